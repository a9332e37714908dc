// ReDoc on vmexec's OpenAPI document; a file of its own: the page's CSP allows no inline script.
Redoc.init("/openapi.json", {}, document.getElementById("redoc"));
