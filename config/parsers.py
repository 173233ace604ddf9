"""Request parsers for the API (settings.REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"])."""

from __future__ import annotations

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's, except that a body nested deeper than Python's recursion limit ("[[[[...") is a 400
    `parse_error` like any other malformed body: DRF catches only ValueError, so the RecursionError was a
    500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
