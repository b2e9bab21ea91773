//! Compile-time wire names for the `#[amring::message]` attribute.
//!
//! The attribute cannot know the module of the struct it expands on; it emits
//! `module_path!()` and these `const fn`s turn it into the reference's name
//! `am.<leaf>.<TypeName>` while compiling (spec §5.1, the rule of
//! [`wire_name_for`](super::wire_name_for)):
//!
//! ```
//! use amring_proto::codec::__wire;
//! const LEN: usize = __wire::len("my_crate::api::hello", "HelloRequest");
//! const BYTES: &[u8; LEN] = &__wire::bytes::<LEN>("my_crate::api::hello", "HelloRequest");
//! const WIRE: &str = __wire::to_str(BYTES);
//! assert_eq!(WIRE, "am.hello.HelloRequest");
//! ```
//!
//! The leaf is the last element of a `::`- or `/`-separated path with one
//! trailing `-go` removed (a Rust module path cannot end in `-go`, so for
//! `module_path!()` the leaf is the module's own name), `unknown` when empty.
//! Not a public API: only the attribute's expansion calls these.

/// The `am.` namespace every derived wire name starts with.
const NS: &[u8] = b"am.";

/// The leaf of `path` as a byte range `(start, end)` of `path`.
const fn leaf_range(path: &[u8]) -> (usize, usize) {
    let mut start = path.len();
    while start > 0 && path[start - 1] != b':' && path[start - 1] != b'/' {
        start -= 1;
    }
    let mut end = path.len();
    if end - start >= 3 && path[end - 3] == b'-' && path[end - 2] == b'g' && path[end - 1] == b'o' {
        end -= 3;
    }
    (start, end)
}

/// The leaf of `path` (see the module docs), `b"unknown"` when empty.
const fn leaf_bytes(path: &str) -> (&[u8], usize, usize) {
    let b = path.as_bytes();
    let (start, end) = leaf_range(b);
    if start == end {
        (b"unknown", 0, 7)
    } else {
        (b, start, end)
    }
}

/// The type name, `b"unknown"` when empty (like the reference).
const fn type_bytes(ty: &str) -> &[u8] {
    if ty.is_empty() {
        b"unknown"
    } else {
        ty.as_bytes()
    }
}

/// Length in bytes of the wire name of `ty` declared in module `path`.
pub const fn len(path: &str, ty: &str) -> usize {
    let (_, start, end) = leaf_bytes(path);
    NS.len() + (end - start) + 1 + type_bytes(ty).len()
}

/// The wire name of `ty` declared in module `path`, as `N` bytes; `N` must be
/// [`len`]`(path, ty)` (a mismatch fails compilation).
pub const fn bytes<const N: usize>(path: &str, ty: &str) -> [u8; N] {
    assert!(N == len(path, ty), "wire name length mismatch");
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 0;
    while i < NS.len() {
        out[at] = NS[i];
        at += 1;
        i += 1;
    }
    let (leaf, start, end) = leaf_bytes(path);
    let mut i = start;
    while i < end {
        out[at] = leaf[i];
        at += 1;
        i += 1;
    }
    out[at] = b'.';
    at += 1;
    let ty = type_bytes(ty);
    let mut i = 0;
    while i < ty.len() {
        out[at] = ty[i];
        at += 1;
        i += 1;
    }
    out
}

/// The bytes built by [`bytes`] as a `&str` (they are UTF-8: slices of two
/// `&str` cut at ASCII separators, plus ASCII).
pub const fn to_str(bytes: &'static [u8]) -> &'static str {
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => panic!("wire name is not UTF-8"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire_name_for;
    use super::*;

    /// The attribute's expansion, for literal inputs (all at compile time).
    macro_rules! wire {
        ($path:expr, $ty:expr) => {{
            const L: usize = len($path, $ty);
            const B: &[u8; L] = &bytes::<L>($path, $ty);
            const W: &str = to_str(B);
            W
        }};
    }

    #[test]
    fn same_rule_as_wire_name_for() {
        macro_rules! same {
            ($($path:literal, $ty:literal;)*) => {
                $( assert_eq!(wire!($path, $ty), wire_name_for($path, $ty), "{:?} {:?}", $path, $ty); )*
            };
        }
        same! {
            "example.com/x/hello", "HelloRequest";
            "example.com/suffix-go", "Thing";
            "main", "Local";
            "github.com/adaptivemsg/adaptivemsg-go", "X";
            "example.com/foo/v2", "T";
            "", "T";
            "x/", "T";
            "-go", "T";
            "a/b", "";
            "h\u{e9}llo/w\u{f6}rld", "\u{dc}n\u{ef}";
        }
    }

    #[test]
    fn module_paths() {
        assert_eq!(wire!("my_crate::api::hello", "HelloRequest"), "am.hello.HelloRequest");
        assert_eq!(wire!("my_crate", "T"), "am.my_crate.T");
        // `_go` is a legal Go directory name that the reference keeps, so it is kept here.
        assert_eq!(wire!("my_crate::api::hello_go", "T"), "am.hello_go.T");
        assert_eq!(len("a::bc", "D"), "am.bc.D".len());
    }
}
