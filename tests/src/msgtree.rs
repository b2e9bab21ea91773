//! A MessagePack value as a comparable tree, for checking encoded bytes
//! against Go's: every scalar keeps its exact bytes (so integer and length
//! widths are compared too), integers also their value, and map entries are
//! sorted so that their order does not matter. Shared by the codec vector
//! tests (`amring-proto/tests/codec_encode_vectors.rs`, included by path)
//! and the amgen-go tests (`tests/tests/amgen.rs`).

/// One MessagePack value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tree {
    /// `c0`.
    Nil,
    /// An integer: its exact bytes and its value.
    Int(Vec<u8>, i128),
    /// A bin: its exact bytes (header included) and its payload length.
    Bin(Vec<u8>, usize),
    /// Any other scalar (bool, float, str, ext): its exact bytes.
    Scalar(Vec<u8>),
    /// An array.
    Array(Vec<Tree>),
    /// A map, entries sorted.
    Map(Vec<(Tree, Tree)>),
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
    assert!(b.len() >= n, "truncated msgpack");
    let (h, t) = b.split_at(n);
    *b = t;
    h
}

fn be(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |a, &x| (a << 8) | u128::from(x))
}

fn parse(b: &mut &[u8]) -> Tree {
    let start = *b;
    let tag = take(b, 1)[0];
    let raw = |b: &[u8]| start[..start.len() - b.len()].to_vec();
    let scalar = |b: &mut &[u8], extra: usize| -> Tree {
        take(b, extra);
        Tree::Scalar(start[..start.len() - b.len()].to_vec())
    };
    let int = |b: &mut &[u8], n: usize, signed: bool| -> Tree {
        let v = be(take(b, n));
        let v = if signed && v >> (8 * n - 1) == 1 {
            v as i128 - (1i128 << (8 * n))
        } else {
            v as i128
        };
        Tree::Int(raw(b), v)
    };
    let len = |b: &mut &[u8], n: usize| be(take(b, n)) as usize;
    match tag {
        0xc0 => Tree::Nil,
        0x00..=0x7f => Tree::Int(vec![tag], i128::from(tag)),
        0xe0..=0xff => Tree::Int(vec![tag], i128::from(tag as i8)),
        0xcc => int(b, 1, false),
        0xcd => int(b, 2, false),
        0xce => int(b, 4, false),
        0xcf => int(b, 8, false),
        0xd0 => int(b, 1, true),
        0xd1 => int(b, 2, true),
        0xd2 => int(b, 4, true),
        0xd3 => int(b, 8, true),
        0xc2 | 0xc3 => scalar(b, 0),
        0xd4 => scalar(b, 2),
        0xd5 => scalar(b, 3),
        0xca => scalar(b, 4),
        0xd6 => scalar(b, 5),
        0xcb => scalar(b, 8),
        0xd7 => scalar(b, 9),
        0xd8 => scalar(b, 17),
        0xa0..=0xbf => scalar(b, usize::from(tag & 0x1f)),
        0xd9 => {
            let n = len(b, 1);
            scalar(b, n)
        }
        0xda => {
            let n = len(b, 2);
            scalar(b, n)
        }
        0xdb => {
            let n = len(b, 4);
            scalar(b, n)
        }
        0xc7 => {
            let n = len(b, 1);
            scalar(b, n + 1)
        }
        0xc4..=0xc6 => {
            let n = len(b, 1 << (tag - 0xc4));
            take(b, n);
            Tree::Bin(raw(b), n)
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let n = match tag {
                0xdc => len(b, 2),
                0xdd => len(b, 4),
                _ => usize::from(tag & 0x0f),
            };
            Tree::Array((0..n).map(|_| parse(b)).collect())
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let n = match tag {
                0xde => len(b, 2),
                0xdf => len(b, 4),
                _ => usize::from(tag & 0x0f),
            };
            let mut m: Vec<(Tree, Tree)> = (0..n).map(|_| (parse(b), parse(b))).collect();
            m.sort();
            Tree::Map(m)
        }
        _ => panic!("unsupported msgpack tag {tag:#x}"),
    }
}

/// The tree of one whole MessagePack value (panics on trailing bytes).
pub fn tree(bytes: &[u8]) -> Tree {
    let mut b = bytes;
    let t = parse(&mut b);
    assert!(b.is_empty(), "trailing bytes after msgpack value");
    t
}

/// Go's value equality under the given leniencies: `int_width` compares
/// integers by value only; `nil_empty` takes nil as equal to an empty
/// array, map or bin.
pub fn same(a: &Tree, b: &Tree, int_width: bool, nil_empty: bool) -> bool {
    let empty = |t: &Tree| {
        matches!(t, Tree::Array(v) if v.is_empty())
            || matches!(t, Tree::Map(v) if v.is_empty())
            || matches!(t, Tree::Bin(_, 0))
    };
    match (a, b) {
        (Tree::Nil, x) | (x, Tree::Nil) if nil_empty && (empty(x) || *x == Tree::Nil) => true,
        (Tree::Int(ra, va), Tree::Int(rb, vb)) => {
            if int_width {
                va == vb
            } else {
                ra == rb
            }
        }
        (Tree::Array(x), Tree::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q, int_width, nil_empty))
        }
        (Tree::Map(x), Tree::Map(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|((ka, va), (kb, vb))| {
                    same(ka, kb, int_width, nil_empty) && same(va, vb, int_width, nil_empty)
                })
        }
        _ => a == b,
    }
}
