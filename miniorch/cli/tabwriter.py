"""Go's `text/tabwriter`, as kubectl configures it, so columns line up byte for byte.

kubectl writes cells separated by `\\t` and lines ended by `\\n` into a tabwriter and
flushes it once per table. The alignment rules are Go's: a *column block* is a run of
consecutive lines that have a cell in that column; a cell's column width is the widest
cell of its block plus `padding`, at least `minwidth`; the last cell of a line is not
part of any column and is written as is. kubectl's fork (liggitt/tabwriter) adds
`remember_widths`: widths never shrink across flushes, so `get -w` rows stay aligned
with the header printed earlier.

- `get` tables: minwidth 6, padding 3, remember widths.
- `describe`:   minwidth 0, padding 2.
"""

from __future__ import annotations

import unicodedata


def text_width(text: str) -> int:
    # Go's tabwriter counts runes; that is len() for a Python str (no wide-char logic).
    return len(text)


class TabWriter:
    def __init__(self, *, minwidth: int, padding: int, remember_widths: bool = False) -> None:
        self.minwidth = minwidth
        self.padding = padding
        self.remember_widths = remember_widths
        self._max_widths: list[int] = []
        self._buffer = ""

    def write(self, text: str) -> None:
        self._buffer += text

    def flush(self) -> str:
        """Format everything written so far; complete lines only are expected."""
        text, self._buffer = self._buffer, ""
        if not text:
            return ""
        trailing_newline = text.endswith("\n")
        raw_lines = text[:-1].split("\n") if trailing_newline else text.split("\n")
        lines = [line.split("\t") for line in raw_lines]
        out: list[str] = []
        self._format(lines, out, widths=[], line0=0, line1=len(lines))
        result = "\n".join(out)
        return result + "\n" if trailing_newline else result

    def _format(self, lines: list[list[str]], out: list[str], *, widths: list[int],
                line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # print the lines before this column block, then measure the block
            self._write_lines(lines, out, widths, line0, this)
            line0 = this
            width = self.minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, text_width(lines[this][column]) + self.padding)
                this += 1
            if self.remember_widths:
                if len(self._max_widths) <= column:
                    self._max_widths.extend([0] * (column + 1 - len(self._max_widths)))
                width = max(width, self._max_widths[column])
                self._max_widths[column] = width
            self._format(lines, out, widths=[*widths, width], line0=line0, line1=this)
            line0 = this
        self._write_lines(lines, out, widths, line0, line1)

    @staticmethod
    def _write_lines(lines: list[list[str]], out: list[str], widths: list[int],
                     line0: int, line1: int) -> None:
        for cells in lines[line0:line1]:
            parts: list[str] = []
            for j, cell in enumerate(cells):
                parts.append(cell)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(" " * max(0, widths[j] - text_width(cell)))
            out.append("".join(parts))


def escape_terminal(text: str) -> str:
    """kubectl's WriteEscaped: control characters would corrupt the terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or unicodedata.category(ch) != "Cc"
                   else repr(ch)[1:-1] for ch in text)
