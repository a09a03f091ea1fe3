"""Path converters: an id longer than a 64-bit integer is simply not a URL of ours (404), never a
database overflow."""


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
