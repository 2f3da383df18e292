"""
The XES reader's bound on one piece of markup: a start tag with its
attribute values, an end tag, a comment or a processing instruction over
256 MiB is refused with the file, line, column and element, instead of
being buffered whole (the CSV reader's bound on a record, in the same
spirit).  The big inputs are gzip files built here, a few hundred KB on
disk.
"""

import gzip

import pytest

import crmflow

MIB = 2**20

HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<log xes.version="1.0">\n'
    b'  <trace>\n'
    b'    <string key="concept:name" value="C-1"/>\n'
    b'    <event>\n'
    b'      <string key="concept:name" value="open"/>\n'
    b'      <date key="time:timestamp" value="2026-01-05T09:00:00Z"/>\n'
)
TAIL = b"    </event>\n  </trace>\n</log>\n"
# HEAD holds 7 lines: the big markup starts on line 8, after 6 spaces.
BIG_LINE = 8
BIG_COLUMN = 7


def write_gzip(path, pieces):
    """
    Writes the byte strings of `pieces` (an iterable) gzip-compressed.
    """
    with gzip.open(path, "wb", compresslevel=1) as f:
        for piece in pieces:
            f.write(piece)


def padded(prefix, size, suffix):
    """
    Yields `prefix`, `size` bytes of "a" in 1 MiB blocks, then `suffix`.
    """
    yield prefix
    block = b"a" * MIB
    for _ in range(size // MIB):
        yield block
    yield b"a" * (size % MIB)
    yield suffix


class TestXesMarkupBound:
    """
    One piece of XES markup over 256 MiB is refused where it starts.
    """

    def test_attribute_value_over_the_bound_is_refused(self, tmp_path):
        """
        A 300 MiB attribute value: ParseError naming the file, the line
        and column of its <string> element, and the bound.
        """
        path = tmp_path / "big_value.xes.gz"
        write_gzip(path, [HEAD] + list(padded(
            b'      <string key="note" value="', 300 * MIB, b'"/>\n'))
            + [TAIL])

        with pytest.raises(crmflow.ParseError) as info:
            crmflow.EventLog.from_xes(path)

        message = str(info.value)
        assert message.startswith(
            f"{path}:{BIG_LINE}:{BIG_COLUMN}: element <string> longer than "
            "256 MiB"), message

    def test_unfinished_tag_over_the_bound_is_refused(self, tmp_path):
        """
        A start tag still open after 300 MiB (the file ends inside it) is
        refused by the bound, named from its first bytes, not reported as
        an unclosed token once everything has been buffered.
        """
        path = tmp_path / "open_tag.xes.gz"
        write_gzip(path, [HEAD] + list(padded(
            b'      <string key="note" value="', 300 * MIB, b"")))

        with pytest.raises(crmflow.ParseError) as info:
            crmflow.EventLog.from_xes(path)

        message = str(info.value)
        assert message.startswith(
            f"{path}:{BIG_LINE}:{BIG_COLUMN}: element <string> longer than "
            "256 MiB"), message

    def test_comment_over_the_bound_is_refused(self, tmp_path):
        """
        A 300 MiB comment is one piece of markup too.
        """
        path = tmp_path / "big_comment.xes.gz"
        write_gzip(path, [HEAD] + list(padded(
            b"      <!--", 300 * MIB, b"-->\n")) + [TAIL])

        with pytest.raises(crmflow.ParseError) as info:
            crmflow.EventLog.from_xes(path)

        message = str(info.value)
        assert message.startswith(
            f"{path}:{BIG_LINE}:{BIG_COLUMN}: comment longer than 256 MiB"), \
            message

    def test_long_text_and_value_under_the_bound_are_read(self, tmp_path):
        """
        Text between elements is streamed, not one piece: 300 MiB of it
        passes, and so does a 20 MiB attribute value, read back whole.
        """
        path = tmp_path / "long_text.xes.gz"
        note = b"b" * (20 * MIB)
        write_gzip(path, [HEAD, b'      <string key="note" value="', note,
                          b'"/>\n']
                   + list(padded(b"      <string key=\"x\" value=\"1\">",
                                 300 * MIB, b"</string>\n"))
                   + [TAIL])

        log = crmflow.EventLog.from_xes(path)

        frame = log.to_dataframe()
        assert ["C-1"] == list(frame["case_id"])
        assert ["open"] == list(frame["activity"])
        assert [20 * MIB] == [len(v) for v in frame["note"]]
        assert {"b"} == set(frame["note"][0])
