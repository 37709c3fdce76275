"""Push demuxers for what browsers record: opus packets out of WebM and Ogg, fed in any slices.

A browser's MediaRecorder sends one recording as a stream of slices (the header in the first,
continuation bytes after), and the graph wants speech while the user is still talking. libav's
demuxers pull from a reader and take the first short read for the end of the stream, so they
cannot be fed as bytes arrive; these two read the few elements a recording holds (WebM: EBML
elements, unknown-size Segment and Cluster as browsers write them; Ogg: pages) and hand out the
codec's header and its packets. They only demux: `flow.audio.opus` decodes. A stream whose audio
is not opus (ogg/vorbis, webm/pcm) is named (`codec`), and the decoder hands it to ffmpeg.
"""

from __future__ import annotations

import struct


class DemuxError(ValueError):
    """The bytes are not the container they were declared as (or are broken beyond reading)."""


MAX_ELEMENT = 1 << 20
"""Largest element or Ogg packet held whole (a block of 20 ms of opus is ~100 bytes; MediaRecorder
never writes one near this): anything larger is an error, not a reason to buffer."""


class Demuxer:
    """Bytes in, opus packets out; `codec` and `head` are known once the header has been read."""

    codec: str | None = None
    """The audio codec the header names ("opus", else the container's own name for it)."""
    head: bytes = b""
    """The codec's setup data (for opus: the OpusHead, which carries the channels and pre-skip)."""

    _broken: DemuxError | None = None

    def push(self, data: bytes) -> list[bytes]:
        """The packets `data` completes. A DemuxError once the stream is broken, but only after
        the packets before the break were handed out (they are speech the user said)."""
        if self._broken is not None:
            raise self._broken
        packets: list[bytes] = []
        try:
            self._push(data, packets)
        except DemuxError as err:
            if not packets:
                raise
            self._broken = err
        return packets

    def end(self) -> None:
        """The stream is over: its pending break, else decide the codec if it is not known yet."""
        if self._broken is not None:
            raise self._broken
        self._end()

    def _push(self, data: bytes, packets: list[bytes]) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        pass


def _vint(buf: bytearray | bytes, pos: int, keep_marker: bool) -> tuple[int, int, bool] | None:
    """(value, length, all-ones) of the EBML variable-size integer at `pos`; None if incomplete."""
    if pos >= len(buf):
        return None
    first = buf[pos]
    if first == 0:
        raise DemuxError("not a WebM stream (an EBML number longer than 8 bytes)")
    length = 9 - first.bit_length()
    if pos + length > len(buf):
        return None
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for byte in buf[pos + 1:pos + length]:
        value = (value << 8) | byte
    ones = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, ones


_EBML = 0x1A45DFA3
_SEGMENT, _CLUSTER, _TRACKS, _TRACK_ENTRY, _BLOCK_GROUP, _AUDIO = (
    0x18538067, 0x1F43B675, 0x1654AE6B, 0xAE, 0xA0, 0xE1)
_MASTERS = {_SEGMENT, _CLUSTER, _TRACKS, _TRACK_ENTRY, _BLOCK_GROUP, _AUDIO}
"""Elements whose children we read: entered (header only), never held whole; may be unknown-size."""
_TRACK_NUMBER, _TRACK_TYPE, _CODEC_ID, _CODEC_PRIVATE = 0xD7, 0x83, 0x86, 0x63A2
_SIMPLE_BLOCK, _BLOCK = 0xA3, 0xA1
_WANTED = {_TRACK_NUMBER, _TRACK_TYPE, _CODEC_ID, _CODEC_PRIVATE, _SIMPLE_BLOCK, _BLOCK}
"""Leaves held whole and read; every other element is skipped as it streams past."""


class WebmDemuxer(Demuxer):
    """Matroska/WebM: the opus track's blocks, as their bytes arrive."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0
        self._started = False
        self._tracks: list[dict[int, bytes]] = []
        self._track: int | None = None
        """The opus track's number once the first Cluster started (the track list is complete)."""

    def _push(self, data: bytes, packets: list[bytes]) -> None:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        self._buf += data
        buf = self._buf
        pos = 0
        while True:
            ident = _vint(buf, pos, keep_marker=True)
            if ident is None:
                break
            eid, id_len, _ = ident
            if id_len > 4:
                raise DemuxError("not a WebM stream (an element ID longer than 4 bytes)")
            size = _vint(buf, pos + id_len, keep_marker=False)
            if size is None:
                break
            length, size_len, unknown = size
            if not self._started:
                if eid != _EBML:
                    raise DemuxError("not a WebM stream (no EBML header)")
                self._started = True
            body = pos + id_len + size_len
            if eid in _MASTERS:
                if eid == _TRACK_ENTRY:
                    self._tracks.append({})
                elif eid == _CLUSTER and self.codec is None:
                    self._choose_track()
                pos = body
                continue
            if unknown:
                raise DemuxError(f"WebM element {eid:#x} of unknown size")
            if eid not in _WANTED:  # skip it, even if most of it has not arrived yet
                if body + length > len(buf):
                    self._skip = body + length - len(buf)
                    pos = len(buf)
                    break
                pos = body + length
                continue
            if length > MAX_ELEMENT:
                raise DemuxError(f"WebM element of {length} bytes")
            if body + length > len(buf):
                break
            self._leaf(eid, bytes(buf[body:body + length]), packets)
            pos = body + length
        del buf[:pos]
        if len(buf) > MAX_ELEMENT + 16:
            raise DemuxError("WebM element header never completes")

    def _end(self) -> None:
        if self.codec is None and self._tracks:  # a header and no audio yet: an empty recording
            self._choose_track()

    def _leaf(self, eid: int, value: bytes, packets: list[bytes]) -> None:
        if eid in (_SIMPLE_BLOCK, _BLOCK):
            if self.codec is None:
                self._choose_track()
            if self.codec == "opus":
                packets.extend(_block_frames(value, self._track))
            return
        if not self._tracks or self.codec is not None:
            return  # a track field outside a TrackEntry, or after the track was chosen
        self._tracks[-1][eid] = value

    def _choose_track(self) -> None:
        """The first opus audio track; else name the first audio codec (the stream goes to ffmpeg)."""
        audio = [t for t in self._tracks if _uint(t.get(_TRACK_TYPE, b"\x02")) == 2]
        if not audio:
            raise DemuxError("WebM stream without an audio track")
        for track in audio:
            if track.get(_CODEC_ID) == b"A_OPUS":
                self.codec, self.head = "opus", track.get(_CODEC_PRIVATE, b"")
                self._track = _uint(track.get(_TRACK_NUMBER, b"\x01"))
                return
        self.codec = audio[0].get(_CODEC_ID, b"unknown").decode("ascii", "replace")


def _uint(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _block_frames(block: bytes, track: int | None) -> list[bytes]:
    """The frames of a (Simple)Block of `track`: track number, 16-bit timecode, flags, lacing."""
    head = _vint(block, 0, keep_marker=False)
    if head is None or len(block) < head[1] + 3:
        raise DemuxError("truncated WebM block")
    number, pos = head[0], head[1] + 3
    if number != track:
        return []
    lacing = (block[pos - 1] >> 1) & 3
    if lacing == 0:
        return [block[pos:]]
    if pos >= len(block):
        raise DemuxError("truncated WebM block")
    count = block[pos] + 1
    pos += 1
    sizes: list[int] = []
    if lacing == 1:  # Xiph: each size as a run of 255s and a last byte
        for _ in range(count - 1):
            size = 0
            while True:
                if pos >= len(block):
                    raise DemuxError("truncated WebM lacing")
                size += block[pos]
                pos += 1
                if block[pos - 1] != 255:
                    break
            sizes.append(size)
    elif lacing == 3:  # EBML: the first size, then signed differences
        first = _vint(block, pos, keep_marker=False)
        if first is None:
            raise DemuxError("truncated WebM lacing")
        sizes.append(first[0])
        pos += first[1]
        for _ in range(count - 2):
            diff = _vint(block, pos, keep_marker=False)
            if diff is None:
                raise DemuxError("truncated WebM lacing")
            value, length, _ = diff
            sizes.append(sizes[-1] + value - ((1 << (7 * length - 1)) - 1))
            pos += length
    else:  # fixed: equal parts
        whole, rest = divmod(len(block) - pos, count)
        if rest:
            raise DemuxError("WebM fixed lacing of unequal frames")
        sizes = [whole] * (count - 1)
    sizes.append(len(block) - pos - sum(sizes))
    if any(size < 0 for size in sizes):
        raise DemuxError("WebM lacing larger than its block")
    frames = []
    for size in sizes:
        frames.append(block[pos:pos + size])
        pos += size
    return frames


_PAGE = struct.Struct("<4sBBqIIIB")


class OggDemuxer(Demuxer):
    """Ogg: the packets of the first logical stream, as its pages arrive (opus: the OpusHead, the
    OpusTags, then audio)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._serial: int | None = None
        self._packet = bytearray()
        self._packets_seen = 0

    def _push(self, data: bytes, packets: list[bytes]) -> None:
        self._buf += data
        buf = self._buf
        pos = 0
        while len(buf) - pos >= _PAGE.size:
            magic, version, _flags, _granule, serial, _seq, _crc, count = _PAGE.unpack_from(buf, pos)
            if magic != b"OggS" or version != 0:
                raise DemuxError("not an Ogg stream (no page where one should start)")
            table = pos + _PAGE.size
            if len(buf) < table + count:
                break
            lacing = buf[table:table + count]
            end = table + count + sum(lacing)
            if len(buf) < end:
                break
            if self._serial is None:
                self._serial = serial
            if serial == self._serial:
                self._page(bytes(buf[table + count:end]), lacing, packets)
            pos = end
        del buf[:pos]
        if len(buf) > 27 + 255 * 256:
            raise DemuxError("Ogg page never completes")

    def _page(self, body: bytes, lacing: bytearray, packets: list[bytes]) -> None:
        pos = 0
        for size in lacing:
            self._packet += body[pos:pos + size]
            pos += size
            if len(self._packet) > MAX_ELEMENT:
                raise DemuxError(f"Ogg packet over {MAX_ELEMENT} bytes")
            if size < 255:  # the packet ends here (255: it goes on in the next segment)
                self._whole(bytes(self._packet), packets)
                self._packet.clear()

    def _whole(self, packet: bytes, packets: list[bytes]) -> None:
        self._packets_seen += 1
        if self._packets_seen == 1:
            if packet.startswith(b"OpusHead"):
                self.codec, self.head = "opus", packet
            else:
                self.codec = packet[1:7].decode("ascii", "replace").strip("\x00") or "unknown"
            return
        if self.codec == "opus" and not packet.startswith(b"OpusTags"):
            packets.append(packet)


def demuxer_for(container: str) -> Demuxer | None:
    """A push demuxer for `container`, or None (wav, mp3: ffmpeg reads those)."""
    if container == "webm":
        return WebmDemuxer()
    if container == "ogg":
        return OggDemuxer()
    return None
