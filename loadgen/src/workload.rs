//! Workload files: what requests `loadgen` sends and how it checks the replies.
//!
//! A workload file (TOML) names one or more request kinds, each with a weight:
//!
//! ```toml
//! description = "the reference's hello example server"
//! seed = 7                               # optional: the random values' seed
//!
//! [[request]]
//! name = "hello"                         # label in the report (default: the wire name)
//! wire = "am.hello.HelloRequest"         # the request's wire name
//! weight = 3                             # relative share of the requests (default 1)
//! fields = ["who", "question"]           # field order, for the compact codec
//! body = '{"who": "user-{{seq}}", "question": "how are you?"}'
//! expect = { type = "am.hello.HelloReply" }
//! ```
//!
//! * `body` is JSON: a string holding a JSON object, or a TOML table. Strings
//!   may carry placeholders, filled per request: `{{seq}}` (the request's
//!   sequence number on its connection), `{{conn}}` (the connection's index),
//!   `{{id}}` (16 hex digits, unique in the run), `{{rand_str:N}}` (N random
//!   alphanumeric bytes), `{{rand_int:LO..HI}}` (a random integer, both ends
//!   included) and `{{payload}}` (`--payload` bytes: the id, then `x`
//!   padding; the built-in echo workload's text). A string that is exactly
//!   one `{{seq}}`, `{{conn}}` or `{{rand_int:..}}` becomes an integer.
//! * Bodies are encoded with the negotiated codec: map (id 2) sends
//!   `{"type": wire, "data": {...}}`; compact (id 1) sends `[wire, field...]`
//!   in the order `fields` gives (a body of one field, or the map codec,
//!   needs none). Nested
//!   structs give theirs in `nested_fields = { "path.to.field" = [..] }`; a
//!   nested object without an order is sent as a map (a Go `map[string]T`).
//! * `expect` says how a reply is checked: `"any"` (any reply but an
//!   `ErrorReply`), `"ok"` (`am.message.OkReply`), `"error"` (an
//!   `ErrorReply`), or a table `{ type = "wire.Name", equal = ["field", ..],
//!   reply_fields = [..] }`: the reply's wire name, and fields that must equal
//!   the request's (`reply_fields` is the reply's field order for compact;
//!   default: the request's `fields`). Default: `"any"`.
//!
//! Random values come from a generator seeded by the request's id, so the
//! checker regenerates a request's fields from its id: nothing is stored per
//! request in flight.
//!
//! The built-in default, [`BUILTIN_ECHO`], is the echo workload; it runs on
//! the patched pre-encoded templates of [`crate::msg::Templates`] (a unit
//! test holds the two to the same bytes).

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{BufMut, BytesMut};
use rmpv::Value;
use serde::Deserialize;

use amring::codec::CodecKind;
use amring_proto::frame::V2_HEADER_LEN;
use amring_proto::Version;

use crate::msg::{write_id, Templates, ID_LEN};

/// The built-in echo workload (`--workload echo`, the default):
/// `am.capmsg.EchoRequest{text}` answered by `am.capmsg.EchoReply` with the same text.
pub const BUILTIN_ECHO: &str = include_str!("../workloads/echo.toml");

/// Wire name of `OkReply`.
const OK_REPLY: &str = "am.message.OkReply";
/// Wire name of `ErrorReply`.
const ERROR_REPLY: &str = "am.message.ErrorReply";

/// A workload file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("workload file: {0}")]
    Toml(#[from] toml::de::Error),
    /// A request kind is inconsistent.
    #[error("request kind {kind:?}: {msg}")]
    Kind {
        /// The kind's name.
        kind: String,
        /// What is wrong.
        msg: String,
    },
    /// The file has no request kind.
    #[error("workload file has no [[request]]")]
    Empty,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    #[allow(dead_code)] // documentation for the reader of the file
    description: Option<String>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    request: Vec<KindSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindSpec {
    #[serde(default)]
    name: Option<String>,
    wire: String,
    #[serde(default = "one")]
    weight: u32,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    nested_fields: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    body: Option<toml::Value>,
    #[serde(default)]
    expect: Option<ExpectSpec>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ExpectSpec {
    Word(String),
    Table(ExpectTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectTable {
    #[serde(rename = "type")]
    wire: Option<String>,
    #[serde(default)]
    equal: Vec<String>,
    #[serde(default)]
    reply_fields: Option<Vec<String>>,
}

/// How the replies of a request kind are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Any reply but an `ErrorReply`.
    Any,
    /// `am.message.OkReply`.
    Ok,
    /// An `am.message.ErrorReply`.
    Error,
    /// A reply of this wire name (`None`: any but `ErrorReply`) whose `equal`
    /// fields equal the request's; `reply_fields` is its compact field order.
    Reply {
        /// Wire name the reply must carry.
        wire: Option<String>,
        /// Fields that must equal the request's fields of the same name.
        equal: Vec<String>,
        /// The reply's field order (compact codec).
        reply_fields: Vec<String>,
    },
}

/// A piece of a string template.
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Lit(String),
    Seq,
    Conn,
    Id,
    Payload,
    RandStr(usize),
    RandInt(i64, i64),
}

/// The body template of a request kind.
#[derive(Clone, Debug, PartialEq)]
enum Tmpl {
    Lit(Value),
    Str(Vec<Seg>),
    /// A string that is exactly one integer placeholder.
    Int(Seg),
    Array(Vec<Tmpl>),
    /// An object without a field order: always a map.
    Map(Vec<(String, Tmpl)>),
    /// An object with a field order: an array in compact, a map in map.
    Struct(Vec<(String, Tmpl)>),
}

/// One request kind, compiled.
#[derive(Clone, Debug)]
pub struct Kind {
    /// Label in the report.
    pub name: String,
    /// Wire name of the request.
    pub wire: String,
    /// Relative share of the requests.
    pub weight: u32,
    /// How its replies are checked.
    pub expect: Expect,
    /// Top-level fields, in order.
    body: Vec<(String, Tmpl)>,
    /// The file gave the field order (or the body has at most one field).
    order_known: bool,
}

/// A parsed workload file.
#[derive(Clone, Debug)]
pub struct WorkloadFile {
    /// Where it came from (`builtin:echo` or the path).
    pub source: String,
    /// The request kinds.
    pub kinds: Vec<Kind>,
    /// Seed of the random values.
    pub seed: u64,
    builtin_echo: bool,
}

impl WorkloadFile {
    /// Loads `--workload`: `echo` (the built-in default) or a file path.
    pub fn load(spec: &str) -> Result<WorkloadFile, WorkloadError> {
        if spec == "echo" || spec == "builtin:echo" {
            let mut w = WorkloadFile::parse(BUILTIN_ECHO, "builtin:echo")?;
            w.builtin_echo = true;
            return Ok(w);
        }
        let text = std::fs::read_to_string(Path::new(spec)).map_err(|source| WorkloadError::Read {
            path: spec.to_string(),
            source,
        })?;
        WorkloadFile::parse(&text, spec)
    }

    /// Parses the TOML text of a workload file.
    pub fn parse(text: &str, source: &str) -> Result<WorkloadFile, WorkloadError> {
        let spec: FileSpec = toml::from_str(text)?;
        if spec.request.is_empty() {
            return Err(WorkloadError::Empty);
        }
        let kinds = spec
            .request
            .into_iter()
            .map(compile_kind)
            .collect::<Result<Vec<_>, _>>()?;
        if kinds.iter().all(|k| k.weight == 0) {
            return Err(WorkloadError::Kind {
                kind: kinds[0].name.clone(),
                msg: "every weight is 0".into(),
            });
        }
        Ok(WorkloadFile {
            source: source.to_string(),
            kinds,
            seed: spec.seed,
            builtin_echo: false,
        })
    }

    /// Whether this is the built-in echo workload (run on the fast templates).
    pub fn is_builtin_echo(&self) -> bool {
        self.builtin_echo
    }

    /// The workload ready to run with the negotiated `codec` and `--payload`.
    pub fn compile(&self, codec: CodecKind, payload: usize) -> Result<Workload, WorkloadError> {
        if self.builtin_echo {
            return Ok(Workload::Echo(Templates::new(codec, payload)));
        }
        Ok(Workload::Custom(Custom::new(self, codec, payload)?))
    }
}

fn kind_err(kind: &str, msg: impl Into<String>) -> WorkloadError {
    WorkloadError::Kind {
        kind: kind.to_string(),
        msg: msg.into(),
    }
}

fn compile_kind(k: KindSpec) -> Result<Kind, WorkloadError> {
    let name = k.name.clone().unwrap_or_else(|| k.wire.clone());
    if k.wire.is_empty() {
        return Err(kind_err(&name, "empty wire name"));
    }
    let json: serde_json::Value = match k.body {
        None => serde_json::Value::Object(Default::default()),
        Some(toml::Value::String(s)) => {
            serde_json::from_str(&s).map_err(|e| kind_err(&name, format!("body is not JSON: {e}")))?
        }
        Some(v @ toml::Value::Table(_)) => {
            serde_json::to_value(v).map_err(|e| kind_err(&name, format!("body: {e}")))?
        }
        Some(_) => return Err(kind_err(&name, "body must be a JSON object (a string) or a table")),
    };
    let serde_json::Value::Object(obj) = json else {
        return Err(kind_err(&name, "body must be a JSON object"));
    };
    // Top-level order: `fields`, or the one field a one-field body has.
    // Without `fields`, a body of several fields can only go out as a map
    // (checked when the workload is compiled for the codec).
    let order_known = !k.fields.is_empty() || obj.len() <= 1;
    let order: Vec<String> = if !k.fields.is_empty() {
        k.fields.clone()
    } else {
        obj.keys().cloned().collect()
    };
    let body = ordered(&name, &obj, &order, "", &k.nested_fields)?;
    let expect = match k.expect {
        None => Expect::Any,
        Some(ExpectSpec::Word(w)) => match w.as_str() {
            "any" => Expect::Any,
            "ok" => Expect::Ok,
            "error" => Expect::Error,
            other => {
                return Err(kind_err(
                    &name,
                    format!("expect {other:?}: use \"any\", \"ok\", \"error\" or a table"),
                ))
            }
        },
        Some(ExpectSpec::Table(t)) => {
            let reply_fields = t.reply_fields.unwrap_or_else(|| order.clone());
            for f in &t.equal {
                if !body.iter().any(|(n, _)| n == f) {
                    return Err(kind_err(&name, format!("equal: the request has no field {f:?}")));
                }
            }
            Expect::Reply {
                wire: t.wire,
                equal: t.equal,
                reply_fields,
            }
        }
    };
    if let Expect::Reply {
        equal, reply_fields, ..
    } = &expect
    {
        // Compact finds a reply field by position: every checked field needs one.
        if !equal.is_empty() && !reply_fields.is_empty() {
            if let Some(f) = equal.iter().find(|f| !reply_fields.contains(f)) {
                return Err(kind_err(&name, format!("equal: {f:?} is not in reply_fields")));
            }
        }
    }
    Ok(Kind {
        name,
        wire: k.wire,
        weight: k.weight,
        expect,
        body,
        order_known,
    })
}

/// The fields of `obj` in `order` (every key must be listed, every listed key present).
fn ordered(
    kind: &str,
    obj: &serde_json::Map<String, serde_json::Value>,
    order: &[String],
    path: &str,
    nested: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<(String, Tmpl)>, WorkloadError> {
    let at = if path.is_empty() { "the body" } else { path };
    if let Some(extra) = obj.keys().find(|k| !order.contains(k)) {
        return Err(kind_err(
            kind,
            format!("{at}: field {extra:?} is not in the field order"),
        ));
    }
    let mut out = Vec::with_capacity(order.len());
    for f in order {
        let v = obj
            .get(f)
            .ok_or_else(|| kind_err(kind, format!("{at}: the field order names {f:?}, the body lacks it")))?;
        let p = if path.is_empty() {
            f.clone()
        } else {
            format!("{path}.{f}")
        };
        out.push((f.clone(), template(kind, v, &p, nested)?));
    }
    Ok(out)
}

fn template(
    kind: &str,
    v: &serde_json::Value,
    path: &str,
    nested: &BTreeMap<String, Vec<String>>,
) -> Result<Tmpl, WorkloadError> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Tmpl::Lit(Value::Nil),
        J::Bool(b) => Tmpl::Lit(Value::Boolean(*b)),
        J::Number(n) => Tmpl::Lit(if let Some(u) = n.as_u64() {
            Value::from(u)
        } else if let Some(i) = n.as_i64() {
            Value::from(i)
        } else {
            Value::from(n.as_f64().unwrap_or(0.0))
        }),
        J::String(s) => {
            let segs = parse_segments(s).map_err(|e| kind_err(kind, format!("{path}: {e}")))?;
            match segs.as_slice() {
                [] => Tmpl::Lit(Value::from("")),
                [Seg::Lit(l)] => Tmpl::Lit(Value::from(l.as_str())),
                [one @ (Seg::Seq | Seg::Conn | Seg::RandInt(..))] => Tmpl::Int(one.clone()),
                _ => Tmpl::Str(segs),
            }
        }
        J::Array(a) => Tmpl::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| template(kind, x, &format!("{path}[{i}]"), nested))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(o) => match nested.get(path) {
            Some(order) => Tmpl::Struct(ordered(kind, o, order, path, nested)?),
            None => Tmpl::Map(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), template(kind, x, &format!("{path}.{k}"), nested)?)))
                    .collect::<Result<_, WorkloadError>>()?,
            ),
        },
    })
}

/// Splits a string into literal text and `{{placeholder}}`s.
fn parse_segments(s: &str) -> Result<Vec<Seg>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Seg::Lit(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed placeholder in {s:?}"))?;
        out.push(placeholder(after[..close].trim())?);
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Seg::Lit(rest.to_string()));
    }
    Ok(out)
}

fn placeholder(p: &str) -> Result<Seg, String> {
    let (name, arg) = match p.split_once(':') {
        Some((n, a)) => (n.trim(), Some(a.trim())),
        None => (p, None),
    };
    match (name, arg) {
        ("seq", None) => Ok(Seg::Seq),
        ("conn", None) => Ok(Seg::Conn),
        ("id", None) => Ok(Seg::Id),
        ("payload", None) => Ok(Seg::Payload),
        ("rand_str", Some(n)) => n
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= 16 << 20)
            .map(Seg::RandStr)
            .ok_or_else(|| format!("rand_str:{n}: want a length up to 16 MiB")),
        ("rand_int", Some(r)) => {
            let (lo, hi) = r.split_once("..").ok_or_else(|| format!("rand_int:{r}: want LO..HI"))?;
            let lo: i64 = lo.trim().parse().map_err(|_| format!("rand_int:{r}: bad LO"))?;
            let hi: i64 = hi.trim().parse().map_err(|_| format!("rand_int:{r}: bad HI"))?;
            if lo > hi {
                return Err(format!("rand_int:{r}: LO > HI"));
            }
            Ok(Seg::RandInt(lo, hi))
        }
        _ => Err(format!(
            "unknown placeholder {{{{{p}}}}} (seq, conn, id, payload, rand_str:N, rand_int:LO..HI)"
        )),
    }
}

/// What a reply turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The reply the request kind expects.
    Good,
    /// An `ErrorReply` where none was expected.
    Remote,
    /// Any other reply (wrong type, wrong field, undecodable).
    Mismatch,
}

/// The workload of a run, compiled for its codec.
#[derive(Clone, Debug)]
pub enum Workload {
    /// The built-in echo: patched pre-encoded templates.
    Echo(Templates),
    /// A workload file's request kinds.
    Custom(Custom),
}

impl Workload {
    /// Index of the request kind of request `id` (into the report's kinds).
    #[inline]
    pub fn kind_of(&self, id: u64) -> usize {
        match self {
            Workload::Echo(_) => 0,
            Workload::Custom(c) => c.kind_of(id),
        }
    }

    /// Appends the request payload of request `id` to `out`.
    #[inline]
    pub fn write_request(&self, id: u64, out: &mut BytesMut) {
        match self {
            Workload::Echo(t) => t.write_request(id, out),
            Workload::Custom(c) => c.write_payload(id, &mut out.writer()),
        }
    }

    /// Appends a whole v2 request frame of request `id` on `stream` to `out`.
    #[inline]
    pub fn write_request_frame_v2(&self, stream: u32, id: u64, out: &mut Vec<u8>) {
        match self {
            Workload::Echo(t) => t.write_request_frame_v2(stream, id, out),
            Workload::Custom(c) => {
                let start = out.len();
                out.push(Version::V2.as_u8());
                out.push(0);
                out.extend_from_slice(&stream.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                c.write_payload(id, out);
                let len = (out.len() - start - V2_HEADER_LEN) as u32;
                out[start + 6..start + 10].copy_from_slice(&len.to_be_bytes());
            }
        }
    }

    /// Checks a reply to request `id`.
    #[inline]
    pub fn check_reply(&self, codec: CodecKind, id: u64, payload: &[u8]) -> Verdict {
        self.check(codec, id, payload).1
    }

    /// The request kind of request `id` and the verdict on its reply (the
    /// kind is picked once).
    #[inline]
    pub fn check(&self, codec: CodecKind, id: u64, payload: &[u8]) -> (usize, Verdict) {
        match self {
            Workload::Echo(t) => {
                let v = if t.check_reply(id, payload) {
                    Verdict::Good
                } else if crate::msg::is_error_reply(codec, payload) {
                    Verdict::Remote
                } else {
                    Verdict::Mismatch
                };
                (0, v)
            }
            Workload::Custom(c) => {
                let k = c.kind_of(id);
                (k, c.verdict(k, id, payload))
            }
        }
    }

    /// Typical length of a request payload (buffer sizing).
    pub fn request_len(&self) -> usize {
        match self {
            Workload::Echo(t) => t.request_len(),
            Workload::Custom(c) => c.typical_request,
        }
    }

    /// Typical length of a whole v2 request frame (buffer sizing).
    pub fn frame_v2_len(&self) -> usize {
        match self {
            Workload::Echo(t) => t.frame_v2_len(),
            Workload::Custom(c) => V2_HEADER_LEN + c.typical_request,
        }
    }

    /// Typical length of a whole v2 reply frame (buffer sizing).
    pub fn reply_frame_v2_len(&self) -> usize {
        match self {
            Workload::Echo(t) => t.reply_frame_v2_len(),
            Workload::Custom(c) => V2_HEADER_LEN + c.typical_request,
        }
    }
}

/// A workload file's request kinds, compiled for one codec.
#[derive(Clone, Debug)]
pub struct Custom {
    kinds: Vec<Kind>,
    /// Cumulative weights, for picking a kind.
    cumulative: Vec<u64>,
    seed: u64,
    compact: bool,
    payload: usize,
    typical_request: usize,
}

/// The random stream of request `id`: the same for its sender and its checker.
fn rng_for(seed: u64, id: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

impl Custom {
    fn new(file: &WorkloadFile, codec: CodecKind, payload: usize) -> Result<Custom, WorkloadError> {
        let compact = matches!(codec, CodecKind::Compact);
        if compact {
            if let Some(k) = file.kinds.iter().find(|k| !k.order_known) {
                return Err(kind_err(
                    &k.name,
                    "the compact codec sends fields by position: a body of several fields needs `fields` (their order); or use --codec map",
                ));
            }
        }
        let mut total = 0u64;
        let cumulative = file
            .kinds
            .iter()
            .map(|k| {
                total += u64::from(k.weight);
                total
            })
            .collect();
        let mut c = Custom {
            kinds: file.kinds.clone(),
            cumulative,
            seed: file.seed,
            compact,
            payload,
            typical_request: 0,
        };
        // Size buffers by a sample of the requests.
        let mut max = 0;
        for id in 0..16u64 {
            let mut v = Vec::new();
            c.write_payload(id, &mut v);
            max = max.max(v.len());
        }
        c.typical_request = max;
        Ok(c)
    }

    /// The request kinds.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    fn pick(&self, rng: &mut fastrand::Rng) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1);
        let x = rng.u64(0..total.max(1));
        self.cumulative.iter().position(|&c| x < c).unwrap_or(0)
    }

    /// The kind of request `id`.
    pub fn kind_of(&self, id: u64) -> usize {
        if self.kinds.len() == 1 {
            return 0;
        }
        self.pick(&mut rng_for(self.seed, id))
    }

    /// The kind and body fields of request `id`.
    fn generate(&self, id: u64) -> (usize, Vec<(&str, Value)>) {
        let mut rng = rng_for(self.seed, id);
        let k = if self.kinds.len() == 1 { 0 } else { self.pick(&mut rng) };
        let ctx = Fill {
            id,
            payload: self.payload,
        };
        let fields = self.kinds[k]
            .body
            .iter()
            .map(|(n, t)| (n.as_str(), ctx.value(t, self.compact, &mut rng)))
            .collect();
        (k, fields)
    }

    /// The request payload of request `id`, encoded (envelope included).
    fn write_payload<W: std::io::Write>(&self, id: u64, out: &mut W) {
        let (k, fields) = self.generate(id);
        let wire = Value::from(self.kinds[k].wire.as_str());
        let env = if self.compact {
            let mut items = Vec::with_capacity(fields.len() + 1);
            items.push(wire);
            items.extend(fields.into_iter().map(|(_, v)| v));
            Value::Array(items)
        } else {
            let data = fields.into_iter().map(|(n, v)| (Value::from(n), v)).collect();
            Value::Map(vec![
                (Value::from("type"), wire),
                (Value::from("data"), Value::Map(data)),
            ])
        };
        // Writing to memory cannot fail.
        let _ = rmpv::encode::write_value(out, &env);
    }

    /// Checks a reply to request `id` against its kind's `expect`.
    pub fn check_reply(&self, id: u64, payload: &[u8]) -> Verdict {
        self.verdict(self.kind_of(id), id, payload)
    }

    /// [`Custom::check_reply`] for request `id` of kind `k`.
    fn verdict(&self, k: usize, id: u64, payload: &[u8]) -> Verdict {
        let Ok((wire, body)) = decode_reply(payload, self.compact) else {
            return Verdict::Mismatch;
        };
        let kind = &self.kinds[k];
        let is_error = wire == ERROR_REPLY;
        match &kind.expect {
            Expect::Error => {
                return if is_error { Verdict::Good } else { Verdict::Mismatch };
            }
            _ if is_error => return Verdict::Remote,
            Expect::Any => return Verdict::Good,
            Expect::Ok => {
                return if wire == OK_REPLY {
                    Verdict::Good
                } else {
                    Verdict::Mismatch
                };
            }
            Expect::Reply { .. } => {}
        }
        let Expect::Reply {
            wire: want,
            equal,
            reply_fields,
        } = &kind.expect
        else {
            return Verdict::Mismatch;
        };
        if want.as_deref().is_some_and(|w| w != wire) {
            return Verdict::Mismatch;
        }
        if equal.is_empty() {
            return Verdict::Good;
        }
        let (_, sent) = self.generate(id);
        for f in equal {
            let got = match &body {
                ReplyBody::Map(m) => m.iter().find(|(n, _)| n.as_str() == Some(f)).map(|(_, v)| v),
                ReplyBody::Positional(items) => reply_fields.iter().position(|n| n == f).and_then(|i| items.get(i)),
            };
            let want = sent.iter().find(|(n, _)| n == f).map(|(_, v)| v);
            match (got, want) {
                (Some(g), Some(w)) if values_equal(g, w) => {}
                _ => return Verdict::Mismatch,
            }
        }
        Verdict::Good
    }
}

/// Values equal as MessagePack data (integers by value, whatever their width).
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| values_equal(k, k2) && values_equal(v, v2)))
        }
        (Value::F32(x), Value::F64(y)) | (Value::F64(y), Value::F32(x)) => f64::from(*x) == *y,
        _ => a == b,
    }
}

/// A decoded reply body: named fields (map codec) or positional ones (compact).
enum ReplyBody {
    Map(Vec<(Value, Value)>),
    Positional(Vec<Value>),
}

/// The wire name and body of a reply payload.
fn decode_reply(mut payload: &[u8], compact: bool) -> Result<(String, ReplyBody), ()> {
    let v = rmpv::decode::read_value(&mut payload).map_err(|_| ())?;
    if !payload.is_empty() {
        return Err(()); // trailing bytes
    }
    match (compact, v) {
        (true, Value::Array(mut items)) if !items.is_empty() => {
            let wire = match items.remove(0) {
                Value::String(s) => s.into_str().ok_or(())?,
                _ => return Err(()),
            };
            Ok((wire, ReplyBody::Positional(items)))
        }
        (false, Value::Map(entries)) => {
            let mut wire = None;
            let mut data = Vec::new();
            for (k, v) in entries {
                match (k.as_str(), v) {
                    (Some("type"), Value::String(s)) => wire = s.into_str(),
                    (Some("data"), Value::Map(m)) => data = m,
                    (Some("data"), Value::Nil) => {}
                    _ => {}
                }
            }
            Ok((wire.ok_or(())?, ReplyBody::Map(data)))
        }
        _ => Err(()),
    }
}

/// Per-request values of the placeholders.
struct Fill {
    id: u64,
    payload: usize,
}

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl Fill {
    fn int(&self, s: &Seg, rng: &mut fastrand::Rng) -> Value {
        match s {
            Seg::Seq => Value::from(self.id & 0xffff_ffff),
            Seg::Conn => Value::from(self.id >> 32),
            Seg::RandInt(lo, hi) => Value::from(rng.i64(*lo..=*hi)),
            _ => Value::Nil,
        }
    }

    fn value(&self, t: &Tmpl, compact: bool, rng: &mut fastrand::Rng) -> Value {
        match t {
            Tmpl::Lit(v) => v.clone(),
            Tmpl::Int(s) => self.int(s, rng),
            Tmpl::Str(segs) => {
                let mut s = String::new();
                for seg in segs {
                    match seg {
                        Seg::Lit(l) => s.push_str(l),
                        Seg::Seq => s.push_str(&(self.id & 0xffff_ffff).to_string()),
                        Seg::Conn => s.push_str(&(self.id >> 32).to_string()),
                        Seg::Id => {
                            let mut b = [0u8; ID_LEN];
                            write_id(&mut b, self.id);
                            s.push_str(std::str::from_utf8(&b).unwrap_or_default());
                        }
                        Seg::Payload => {
                            let mut b = vec![b'x'; self.payload];
                            write_id(&mut b, self.id);
                            s.push_str(std::str::from_utf8(&b).unwrap_or_default());
                        }
                        Seg::RandStr(n) => s.extend((0..*n).map(|_| ALNUM[rng.usize(..ALNUM.len())] as char)),
                        Seg::RandInt(lo, hi) => s.push_str(&rng.i64(*lo..=*hi).to_string()),
                    }
                }
                Value::from(s)
            }
            Tmpl::Array(items) => Value::Array(items.iter().map(|x| self.value(x, compact, rng)).collect()),
            Tmpl::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, x)| (Value::from(k.as_str()), self.value(x, compact, rng)))
                    .collect(),
            ),
            Tmpl::Struct(fields) if compact => {
                Value::Array(fields.iter().map(|(_, x)| self.value(x, compact, rng)).collect())
            }
            Tmpl::Struct(fields) => Value::Map(
                fields
                    .iter()
                    .map(|(k, x)| (Value::from(k.as_str()), self.value(x, compact, rng)))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(text: &str, codec: CodecKind) -> Custom {
        match WorkloadFile::parse(text, "test").unwrap().compile(codec, 64).unwrap() {
            Workload::Custom(c) => c,
            Workload::Echo(_) => unreachable!(),
        }
    }

    /// The built-in echo file, compiled as any other file, sends the same
    /// bytes as the fast templates and accepts the same replies.
    #[test]
    fn builtin_echo_file_equals_the_templates() {
        for codec in [CodecKind::Compact, CodecKind::Map] {
            for payload in [0, 4, 16, 64, 300] {
                let fast = WorkloadFile::load("echo").unwrap().compile(codec, payload).unwrap();
                assert!(matches!(fast, Workload::Echo(_)));
                let slow = Workload::Custom(
                    Custom::new(&WorkloadFile::parse(BUILTIN_ECHO, "x").unwrap(), codec, payload).unwrap(),
                );
                for (stream, id) in [(0u32, 1u64), (3, (7 << 32) + 99), (1, u64::MAX)] {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    fast.write_request_frame_v2(stream, id, &mut a);
                    slow.write_request_frame_v2(stream, id, &mut b);
                    assert_eq!(a, b, "{codec:?} payload {payload}");
                    let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
                    fast.write_request(id, &mut a);
                    slow.write_request(id, &mut b);
                    assert_eq!(a, b);
                    // The echo reply of this request, as the engine encodes it.
                    let text = std::str::from_utf8(&a[a.len() - payload..]).unwrap().to_string();
                    let (reply, _) = crate::msg::encode_reply(codec, &text);
                    assert_eq!(fast.check_reply(codec, id, &reply), Verdict::Good);
                    assert_eq!(slow.check_reply(codec, id, &reply), Verdict::Good);
                    if payload > 0 {
                        assert_eq!(slow.check_reply(codec, id ^ (1 << 62), &reply), Verdict::Mismatch);
                        assert_eq!(fast.check_reply(codec, id ^ (1 << 62), &reply), Verdict::Mismatch);
                    }
                }
            }
        }
    }

    const TWO: &str = r#"
        seed = 3
        [[request]]
        name = "add"
        wire = "am.wl.Add"
        weight = 3
        fields = ["tag", "a", "b", "note"]
        body = '{"tag": "r{{seq}}-{{rand_str:5}}", "a": "{{rand_int:-5..5}}", "b": 7, "note": {"k": "{{conn}}"}}'
        expect = { type = "am.wl.Sum", equal = ["tag"], reply_fields = ["tag", "sum"] }

        [[request]]
        name = "put"
        wire = "am.wl.Put"
        body = { key = "{{id}}" }
        expect = "ok"
    "#;

    #[test]
    fn placeholders_and_both_codecs() {
        for codec in [CodecKind::Compact, CodecKind::Map] {
            let c = custom(TWO, codec);
            let mut seen = [0usize; 2];
            for id in (5u64 << 32)..(5u64 << 32) + 400 {
                let k = c.kind_of(id);
                seen[k] += 1;
                let mut p = Vec::new();
                c.write_payload(id, &mut p);
                let v = rmpv::decode::read_value(&mut &p[..]).unwrap();
                let (wire, fields): (&str, Vec<Value>) = match (&v, codec) {
                    (Value::Array(items), CodecKind::Compact) => (items[0].as_str().unwrap(), items[1..].to_vec()),
                    (Value::Map(m), CodecKind::Map) => {
                        assert_eq!(m[0].0.as_str(), Some("type"));
                        let Value::Map(d) = &m[1].1 else { panic!() };
                        (m[0].1.as_str().unwrap(), d.iter().map(|(_, v)| v.clone()).collect())
                    }
                    _ => panic!("{v:?}"),
                };
                if k == 0 {
                    assert_eq!(wire, "am.wl.Add");
                    let tag = fields[0].as_str().unwrap();
                    let seq = id & 0xffff_ffff;
                    assert!(tag.starts_with(&format!("r{seq}-")) && tag.len() == format!("r{seq}-").len() + 5);
                    let a = fields[1].as_i64().unwrap();
                    assert!((-5..=5).contains(&a));
                    assert_eq!(fields[2].as_u64(), Some(7));
                    // An object without an order is a map, with the conn as an integer.
                    assert_eq!(fields[3], Value::Map(vec![(Value::from("k"), Value::from(5u64))]));
                } else {
                    assert_eq!(wire, "am.wl.Put");
                    assert_eq!(fields[0].as_str().unwrap().len(), 16);
                }
                // The same id gives the same request: the checker can rebuild it.
                let mut again = Vec::new();
                c.write_payload(id, &mut again);
                assert_eq!(p, again);
            }
            // Weights 3:1.
            assert!(seen[0] > 2 * seen[1] && seen[1] > 40, "{seen:?}");
        }
    }

    fn reply(codec: CodecKind, wire: &str, fields: Vec<(&str, Value)>) -> Vec<u8> {
        let v = match codec {
            CodecKind::Compact => {
                let mut items = vec![Value::from(wire)];
                items.extend(fields.into_iter().map(|(_, v)| v));
                Value::Array(items)
            }
            _ => Value::Map(vec![
                (Value::from("type"), Value::from(wire)),
                (
                    Value::from("data"),
                    Value::Map(fields.into_iter().map(|(k, v)| (Value::from(k), v)).collect()),
                ),
            ]),
        };
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &v).unwrap();
        out
    }

    #[test]
    fn reply_checks() {
        for codec in [CodecKind::Compact, CodecKind::Map] {
            let c = custom(TWO, codec);
            let add = (0u64..).find(|&id| c.kind_of(id) == 0).unwrap();
            let put = (0u64..).find(|&id| c.kind_of(id) == 1).unwrap();
            let (_, sent) = c.generate(add);
            let tag = sent[0].1.clone();
            let good = reply(codec, "am.wl.Sum", vec![("tag", tag.clone()), ("sum", Value::from(3))]);
            assert_eq!(c.check_reply(add, &good), Verdict::Good);
            let wrong_tag = reply(
                codec,
                "am.wl.Sum",
                vec![("tag", Value::from("nope")), ("sum", Value::from(3))],
            );
            assert_eq!(c.check_reply(add, &wrong_tag), Verdict::Mismatch);
            let wrong_type = reply(codec, "am.wl.Other", vec![("tag", tag), ("sum", Value::from(3))]);
            assert_eq!(c.check_reply(add, &wrong_type), Verdict::Mismatch);
            let err = reply(
                codec,
                ERROR_REPLY,
                vec![("code", Value::from("handler_error")), ("message", Value::from("x"))],
            );
            assert_eq!(c.check_reply(add, &err), Verdict::Remote);
            assert_eq!(c.check_reply(put, &err), Verdict::Remote);
            let ok = reply(codec, OK_REPLY, vec![]);
            assert_eq!(c.check_reply(put, &ok), Verdict::Good);
            assert_eq!(c.check_reply(add, &ok), Verdict::Mismatch);
            assert_eq!(c.check_reply(put, &good), Verdict::Mismatch);
            assert_eq!(c.check_reply(put, &[0xc1]), Verdict::Mismatch);
            assert_eq!(c.check_reply(put, &[]), Verdict::Mismatch);
            // Trailing bytes are not a reply.
            let mut trailing = ok.clone();
            trailing.push(0);
            assert_eq!(c.check_reply(put, &trailing), Verdict::Mismatch);
        }
    }

    #[test]
    fn nested_structs_follow_their_order() {
        let text = r#"
            [[request]]
            wire = "am.x.Outer"
            fields = ["inner", "n"]
            nested_fields = { inner = ["b", "a"] }
            body = '{"n": 1, "inner": {"a": "A", "b": "B"}}'
        "#;
        let c = custom(text, CodecKind::Compact);
        let mut p = Vec::new();
        c.write_payload(0, &mut p);
        let v = rmpv::decode::read_value(&mut &p[..]).unwrap();
        assert_eq!(
            v,
            Value::Array(vec![
                Value::from("am.x.Outer"),
                Value::Array(vec![Value::from("B"), Value::from("A")]),
                Value::from(1u64)
            ])
        );
        let m = custom(text, CodecKind::Map);
        let mut p = Vec::new();
        m.write_payload(0, &mut p);
        let v = rmpv::decode::read_value(&mut &p[..]).unwrap();
        let Value::Map(env) = v else { panic!() };
        let Value::Map(data) = &env[1].1 else { panic!() };
        assert_eq!(data[0].0.as_str(), Some("inner"));
        assert_eq!(
            data[0].1,
            Value::Map(vec![
                (Value::from("b"), Value::from("B")),
                (Value::from("a"), Value::from("A"))
            ])
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "no [[request]]"),
            ("[[request]]\nwire = \"a.B\"\nbody = '{\"x\": '", "not JSON"),
            (
                "[[request]]\nwire = \"a.B\"\nbody = '{\"x\": \"{{nope}}\"}'",
                "unknown placeholder",
            ),
            (
                "[[request]]\nwire = \"a.B\"\nbody = '{\"x\": \"{{rand_int:5..1}}\"}'",
                "LO > HI",
            ),
            ("[[request]]\nwire = \"a.B\"\nbody = '{\"x\": \"{{seq\"}'", "unclosed"),
            ("[[request]]\nwire = \"a.B\"\nexpect = \"maybe\"", "expect"),
            (
                "[[request]]\nwire = \"a.B\"\nbody = { x = 1 }\nexpect = { equal = [\"y\"] }",
                "no field \"y\"",
            ),
            (
                "[[request]]\nwire = \"a.B\"\nfields = [\"x\", \"y\"]\nbody = { x = 1 }",
                "lacks it",
            ),
            ("[[request]]\nwire = \"a.B\"\nwieght = 2", "unknown field"),
            ("[[request]]\nwire = \"a.B\"\nweight = 0", "every weight is 0"),
        ];
        for (text, want) in cases {
            let e = WorkloadFile::parse(text, "t").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn field_order_is_needed_for_compact_only() {
        let text = "[[request]]\nwire = \"a.B\"\nbody = '{\"y\": 2, \"x\": 1}'";
        let w = WorkloadFile::parse(text, "t").unwrap();
        let e = w.compile(CodecKind::Compact, 0).unwrap_err().to_string();
        assert!(e.contains("needs `fields`"), "{e}");
        // Map sends by name: no order needed.
        let Workload::Custom(c) = w.compile(CodecKind::Map, 0).unwrap() else {
            panic!()
        };
        let mut p = Vec::new();
        c.write_payload(0, &mut p);
        let v = rmpv::decode::read_value(&mut &p[..]).unwrap();
        let Value::Map(env) = v else { panic!() };
        let Value::Map(data) = &env[1].1 else { panic!() };
        let mut names: Vec<_> = data.iter().map(|(k, _)| k.as_str().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x", "y"]);
    }

    #[test]
    fn shipped_example_files_parse() {
        for f in ["go-hello.toml", "go-echo.toml", "echo.toml", "two-kinds.toml"] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/workloads/");
            let w = WorkloadFile::load(&format!("{path}{f}")).unwrap();
            for codec in [CodecKind::Compact, CodecKind::Map] {
                w.compile(codec, 64).unwrap();
            }
        }
    }
}
