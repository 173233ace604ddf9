"""Where sanctions lists come from: a file, or an https URL fetched without following redirects.

An http URL could be altered on the way and a redirect could send the download anywhere, so both are
refused: the list is taken only from the https URL a compliance officer named. Its size is capped, and
what arrives is then held to the publisher's own Record_Count (screening.parse_sdn_xml).
"""

from __future__ import annotations

from pathlib import Path

import requests

from compliance.validation import InvalidInput

OFAC_SDN_XML_URL = "https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/SDN.XML"
MAX_BYTES = 512 * 1024 * 1024  # the SDN XML is tens of MB; anything this large is not it
CONNECT_TIMEOUT_S = 15
READ_TIMEOUT_S = 120
_CHUNK = 1024 * 1024


def is_url(source: str) -> bool:
    return "://" in source


def fetch(url: str) -> bytes:
    """The body of an https URL answered with 200 directly. InvalidInput for anything else."""
    if not url.lower().startswith("https://"):
        raise InvalidInput(f"sanctions lists are downloaded over https only, not {url.split('://', 1)[0]}://",
                           code="sanctions_url_not_https")
    try:
        with requests.get(url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S), allow_redirects=False,
                          stream=True) as response:
            if response.is_redirect or 300 <= response.status_code < 400:
                raise InvalidInput(f"{url} answered with a redirect (HTTP {response.status_code} to "
                                   f"{response.headers.get('Location', '?')}); redirects are not followed: "
                                   "name the final https URL, or download the file and import it from its path",
                                   code="sanctions_redirect_refused")
            if response.status_code != 200:
                raise InvalidInput(f"download failed: HTTP {response.status_code}", code="sanctions_download_failed")
            chunks, size = [], 0
            for chunk in response.iter_content(_CHUNK):
                size += len(chunk)
                if size > MAX_BYTES:
                    raise InvalidInput(f"the download is larger than {MAX_BYTES // (1024 * 1024)} MB",
                                       code="sanctions_download_failed")
                chunks.append(chunk)
    except requests.RequestException as exc:
        raise InvalidInput(f"download failed: {exc}", code="sanctions_download_failed") from None
    return b"".join(chunks)


def read(source: str) -> bytes:
    """A file path or an https URL."""
    if is_url(source):
        return fetch(source)
    path = Path(source)
    if not path.is_file():
        raise InvalidInput(f"no such file: {source}", code="sanctions_file_missing")
    return path.read_bytes()
