"""Cursor pagination for every list: `?cursor=` from the `next` / `previous` links, `?page_size=`
(default 50, at most 200). No COUNT over large tables, and a page never shifts when rows are added."""

from __future__ import annotations

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"

    def decode_cursor(self, request):
        # A cursor is opaque but forgeable: its position must be a time (every ordering here starts
        # with one), or the database would be asked to compare a time with anything at all.
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                position = parse_datetime(cursor.position)
            except ValueError:
                position = None
            if position is None:
                raise NotFound(self.invalid_cursor_message)
        return cursor


class OldestFirst(Cursor):
    ordering = ("created_at", "id")


class NewestFirst(Cursor):
    ordering = ("-created_at", "-id")


class LatestPeriodFirst(Cursor):
    ordering = ("-period_start", "-id")
