// Forms 01–05: the print button (no inline handlers: the CSP allows scripts from files only).
document.getElementById("print").addEventListener("click", () => window.print());
