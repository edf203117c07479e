"""Fixtures shared by unit tests: a real HTTP server on 127.0.0.1 serving genai-prices data (issue 15)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from calculators import apiprices


class PriceDataHandler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


# A genai-prices v2 data file (a JSON array of providers) in which claude-sonnet-5-5's input went to $2.2
# and a model was added; the other providers are left out (the diff reports them removed).
NEW_DATA = [{
    "id": "anthropic", "name": "Anthropic", "api_pattern": "https://api\\.anthropic\\.com",
    "model_match": {"contains": "claude"},
    "models": [
        {"id": "claude-sonnet-5-5", "match": {"equals": "claude-sonnet-5-5"}, "name": "Claude Sonnet 5.5",
         "prices": {"input_mtok": 2.2, "cache_write_mtok": 2.5, "cache_read_mtok": 0.1, "output_mtok": 10}},
        {"id": "claude-sonnet-6", "match": {"equals": "claude-sonnet-6"}, "name": "Claude Sonnet 6",
         "prices": {"input_mtok": 3, "output_mtok": 12}},
    ],
}]


@pytest.fixture
def data_server(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving NEW_DATA; the fetched data goes to a temporary cache dir."""
    monkeypatch.setenv(apiprices.DIR_ENV, str(tmp_path / "cache"))
    apiprices.reload()
    handler = type("H", (PriceDataHandler,), {"body": json.dumps(NEW_DATA).encode()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/data.json"
    server.shutdown()
    server.server_close()
    apiprices.reload()
