//! Envelope-first decode (spec §4.6, §4.7): the wire name as a borrowed `&str`
//! and the body as a borrowed slice, without decoding the body and without
//! allocating (except for the error value on failure).

use super::de_read::{eof, invalid_code, utf8, Head, Reader};
use super::error::DecodeError;

/// How the body slice of an [`Envelope`] is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Compact: `fields` consecutive MessagePack values (the elements after the name).
    CompactFields {
        /// Number of elements after the wire name.
        fields: u32,
    },
    /// Map codec: one MessagePack value (the `"data"` entry: a map, or an array).
    MapData,
    /// A user codec's body ([`CodecImpl`](super::CodecImpl)): its layout is
    /// that codec's business.
    Custom,
}

/// A decoded envelope: routing information plus the undecoded body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The wire name, borrowed from the payload.
    pub wire: &'a str,
    /// The undecoded body, borrowed from the payload.
    pub body: &'a [u8],
    /// Layout of `body`.
    pub kind: BodyKind,
}

const NAME_NOT_STRING: &str = "compact message name must be a string";
const EMPTY_ARRAY: &str = "compact payload must be a non-empty array";
const MISSING_TYPE: &str = "map payload missing type";

fn codec(text: &str) -> DecodeError {
    DecodeError::Codec(text.into())
}

/// Compact envelope: `[name, f1, ..., fn]`. Element 0 may be str or bin (must
/// be UTF-8); non-minimal headers are fine; bytes after the array are ignored.
pub(crate) fn decode_compact(payload: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let mut rd = Reader::new(payload);
    match rd.peek() {
        None => return Err(eof()),
        Some(0x90..=0x9f | 0xdc | 0xdd) => {}
        Some(c) => return Err(invalid_code(c, "array length")),
    }
    let n = match rd.read_head()? {
        Head::Array(0) => return Err(codec(EMPTY_ARRAY)),
        Head::Array(n) => n,
        _ => return Err(invalid_code(rd.last_marker(), "array length")),
    };
    let wire = match rd.read_head() {
        Ok(Head::Str(s) | Head::Bin(s)) => utf8(s).map_err(|_| codec(NAME_NOT_STRING))?,
        Ok(_) => return Err(codec(NAME_NOT_STRING)),
        Err(e) => return Err(e),
    };
    let start = rd.pos();
    let fields = n - 1;
    rd.skip(u64::from(fields))?;
    Ok(Envelope {
        wire,
        body: rd.slice_from(start),
        kind: BodyKind::CompactFields { fields },
    })
}

/// Reads the `"type"` value: str or bin, nil counts as missing.
fn read_type<'a>(rd: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
    match rd.read_head()? {
        Head::Str(s) | Head::Bin(s) => utf8(s).map_err(|_| codec("map payload type is not UTF-8")),
        Head::Nil => Ok(""),
        _ => Err(invalid_code(rd.last_marker(), "string/bytes length")),
    }
}

/// Reads the `"data"` value's extent; `None` when it is nil.
fn read_data<'a>(rd: &mut Reader<'a>) -> Result<Option<&'a [u8]>, DecodeError> {
    let start = rd.pos();
    if rd.peek() == Some(0xc0) {
        rd.skip(1)?;
        return Ok(None);
    }
    rd.skip(1)?;
    Ok(Some(rd.slice_from(start)))
}

/// The layout every encoder emits in practice, `{"type": str, "data": non-nil}`,
/// read without the generic key loop. `None` (nothing decided) for anything
/// else, including every error: the general path then reports it.
#[inline]
fn map_fast(payload: &[u8]) -> Option<Envelope<'_>> {
    let rest = payload.strip_prefix(b"\x82\xa4type")?;
    let mut rd = Reader::new(rest);
    let wire = match rd.read_head() {
        Ok(Head::Str(s)) => utf8(s).ok().filter(|w| !w.is_empty())?,
        _ => return None,
    };
    let start = rd.pos() + 5;
    if rest.get(rd.pos()..start)? != b"\xa4data" || rest.get(start) == Some(&0xc0) {
        return None;
    }
    rd.seek(start);
    rd.skip(1).ok()?;
    Some(Envelope {
        wire,
        body: rd.slice_from(start),
        kind: BodyKind::MapData,
    })
}

/// Map envelope: `{"type": name, "data": body}` in any key order (unknown keys
/// skipped, a repeated key: last wins), or a two-element array `[name, body]`.
pub(crate) fn decode_map(payload: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    match map_fast(payload) {
        Some(env) => Ok(env),
        None => decode_map_general(payload),
    }
}

/// [`decode_map`] without the fast path.
fn decode_map_general(payload: &[u8]) -> Result<Envelope<'_>, DecodeError> {
    let mut rd = Reader::new(payload);
    match rd.peek() {
        None => return Err(eof()),
        Some(0x80..=0x9f | 0xdc..=0xdf) => {}
        Some(c) => return Err(invalid_code(c, "map length")),
    }
    let (wire, data) = match rd.read_head()? {
        Head::Map(n) => {
            let mut wire = "";
            let mut data = None;
            for _ in 0..n {
                let key = match rd.read_head()? {
                    Head::Str(s) | Head::Bin(s) => s,
                    _ => return Err(invalid_code(rd.last_marker(), "string/bytes length")),
                };
                match key {
                    b"type" => wire = read_type(&mut rd)?,
                    b"data" => data = read_data(&mut rd)?,
                    _ => rd.skip(1)?,
                }
            }
            (wire, data)
        }
        Head::Array(2) => {
            let wire = read_type(&mut rd)?;
            (wire, read_data(&mut rd)?)
        }
        Head::Array(n) => {
            return Err(DecodeError::Codec(format!(
                "map payload array must have 2 elements, got {n}"
            )))
        }
        _ => return Err(invalid_code(rd.last_marker(), "map length")),
    };
    if wire.is_empty() {
        return Err(codec(MISSING_TYPE));
    }
    let body = data.ok_or_else(eof)?;
    Ok(Envelope {
        wire,
        body,
        kind: BodyKind::MapData,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn compact_extents() {
        let p = h("92b5616d2e6361706d73672e4563686f52657175657374a568656c6c6fc0c0");
        let env = decode_compact(&p).unwrap();
        assert_eq!(env.wire, "am.capmsg.EchoRequest");
        assert_eq!(env.body, &h("a568656c6c6f")[..]);
        assert_eq!(env.kind, BodyKind::CompactFields { fields: 1 });
        assert_eq!(decode_compact(&[]).unwrap_err().to_string(), "codec error: EOF");
        assert_eq!(
            decode_compact(&[0x90]).unwrap_err().to_string(),
            "codec error: compact payload must be a non-empty array"
        );
        assert_eq!(
            decode_compact(&[0x92, 0x05, 0xa1, 0x61]).unwrap_err().to_string(),
            "codec error: compact message name must be a string"
        );
        assert_eq!(
            decode_compact(&[0x81]).unwrap_err().to_string(),
            "codec error: msgpack: invalid code=81 decoding array length"
        );
        // Body cut short.
        assert!(decode_compact(&h("93a178a161")).is_err());
    }

    #[test]
    fn map_forms() {
        let p = h("83a46d65746101a46461746181a176a161a474797065a158");
        let env = decode_map(&p).unwrap();
        assert_eq!(env.wire, "X");
        assert_eq!(env.body, &h("81a176a161")[..]);
        let p2 = h("92a15880");
        let env = decode_map(&p2).unwrap();
        assert_eq!((env.wire, env.body), ("X", &[0x80u8][..]));
        assert_eq!(
            decode_map(&h("81a46461746180")).unwrap_err().to_string(),
            "codec error: map payload missing type"
        );
        assert_eq!(
            decode_map(&h("81a474797065a158")).unwrap_err().to_string(),
            "codec error: EOF"
        );
        assert_eq!(
            decode_map(&h("82a474797065a158a464617461c0")).unwrap_err().to_string(),
            "codec error: EOF"
        );
        assert!(decode_map(&h("93a15880c0")).is_err());
    }

    #[test]
    fn map_fast_path_agrees_with_general_path() {
        let good = [
            "82a474797065a158a46461746181a176a161",
            "82a474797065d903616263a4646174619201c0",
            "82a474797065a158a464617461c0",
            "82a474797065a0a46461746180",
            "82a474797065c401 58a46461746180",
            "82a474797065a158a564617461780180",
            "82a46461746180a474797065a158",
        ];
        let mut hits = 0;
        for g in good {
            let p = h(&g.replace(' ', ""));
            for end in 0..=p.len() {
                for flip in [None, Some(0xc1u8), Some(0x00), Some(0xdf)] {
                    let mut b = p[..end].to_vec();
                    if let (Some(x), Some(last)) = (flip, b.last_mut()) {
                        *last = x;
                    }
                    let general = decode_map_general(&b);
                    if let Some(fast) = map_fast(&b) {
                        hits += 1;
                        assert_eq!(Ok(fast), general, "input {}", hex::encode(&b));
                    }
                    assert_eq!(decode_map(&b), general, "input {}", hex::encode(&b));
                }
            }
        }
        assert!(hits > 5, "the fast path was exercised ({hits})");
    }
}
