"""Bounded request bodies: a body is counted while it arrives and refused past its route's limit
(413), whatever Content-Length says and for chunked uploads too — nothing larger is held."""

from __future__ import annotations

from fastapi import HTTPException, Request


async def read_bounded(request: Request, limit: int) -> bytes:
    """The whole body, at most `limit` bytes; 413 (through the error layer) beyond that."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413)
        chunks.append(chunk)
    return b"".join(chunks)
