"""With media on S3, the one-stop system gets the object store's own pre-signed URLs (expiring
after ONESTOP_FILE_URL_SECONDS) instead of links to our GET /onestop/files/{id}."""

from __future__ import annotations

from pydantic import SecretStr

from tests.fakes.s3 import S3Bucket
from tests.servers import wait_until
from tests.webhook.test_onestop import accept_in_panel, connected, dossier_with_a_photo
from webhook.settings import Settings


def test_file_links_of_an_s3_store_are_presigned_with_the_configured_expiry(
    settings: Settings, s3: S3Bucket
) -> None:
    on_s3 = settings.model_copy(update={
        "media_url": s3.url, "s3_endpoint_url": s3.endpoint, "s3_region": "us-east-1",
        "s3_access_key_id": "test", "s3_secret_access_key": SecretStr("test"),
        "onestop_file_url_seconds": 3600,
    })  # fmt: skip
    with connected(on_s3) as c:
        _, code, photo = dossier_with_a_photo(c.runtime)
        accept_in_panel(c, code)
        wait_until(lambda: c.fake.creates == [code], "the dossier was not created")
        (create,) = c.fake.calls("DongBoHoSoMC")
        (attached,) = create.body["data"][0]["TaiLieuNop"]
        url = attached["DuongDanTaiTepTin"]
        assert url.startswith(f"{s3.endpoint}/{s3.bucket}/media/") and "X-Amz-Expires=3600" in url
        fetched = c.fake.fetch(url)
        assert fetched.status_code == 200 and fetched.content == photo
