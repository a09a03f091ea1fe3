"""Cursor pagination for every list: `?cursor=` from the `next` / `previous` links, `?page_size=`
(default 50, at most 200). No COUNT over large tables, and a page never shifts when rows are added."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"


class OldestFirst(Cursor):
    ordering = ("created_at", "id")


class NewestFirst(Cursor):
    ordering = ("-created_at", "-id")


class LatestPeriodFirst(Cursor):
    ordering = ("-period_start", "-id")
