//! A minimal zero-copy protobuf wire reader: in, the bytes of one message; out, its fields
//! one by one as `(field number, value)` with length-delimited values borrowed from the
//! input. Never panics; malformed input is a [`WireError`].

/// Malformed protobuf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError(pub String);

impl From<WireError> for super::error::DecodeError {
    fn from(e: WireError) -> Self {
        super::error::DecodeError::Protobuf(e.0)
    }
}

/// One field value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

impl<'a> Value<'a> {
    /// The value of a length-delimited field (message, bytes, string).
    #[inline]
    pub fn bytes(self, what: &str) -> Result<&'a [u8], WireError> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(wrong_type(what)),
        }
    }

    /// The value of a string field.
    #[inline]
    pub fn str(self, what: &str) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes(what)?)
            .map_err(|_| WireError(format!("{what} is not valid UTF-8")))
    }

    /// The value of a fixed64 field.
    #[inline]
    pub fn fixed64(self, what: &str) -> Result<u64, WireError> {
        match self {
            Value::Fixed64(v) => Ok(v),
            _ => Err(wrong_type(what)),
        }
    }

    /// The value of a varint field (int32, enum, ...).
    #[inline]
    pub fn varint(self, what: &str) -> Result<u64, WireError> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(wrong_type(what)),
        }
    }
}

#[cold]
fn wrong_type(what: &str) -> WireError {
    WireError(format!("{what} has the wrong wire type"))
}

/// Iterates the fields of one message.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else {
                return Err(WireError("truncated varint".to_owned()));
            };
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(WireError("varint longer than 10 bytes".to_owned()))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError(format!(
                "field of {n} bytes runs past the end ({} left)",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field, or `None` at the end of the message.
    #[inline]
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(WireError(format!("invalid field number {field}")));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len)
                    .map_err(|_| WireError(format!("length {len} too large")))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            t => return Err(WireError(format!("unsupported wire type {t}"))),
        };
        Ok(Some((field as u32, value)))
    }
}

/// Reads a `KeyValue` whose value is a string: `(key, Some(value bytes))`, or `(key, None)`
/// when the value is of another type. The value's UTF-8 is checked by [`utf8`] only for the
/// keys augur reads.
pub(crate) fn string_attr(kv: &[u8]) -> Result<(&[u8], Option<&[u8]>), WireError> {
    let mut key: &[u8] = &[];
    let mut value = None;
    let mut f = Fields::new(kv);
    while let Some((n, v)) = f.next()? {
        match n {
            1 => key = v.bytes("KeyValue.key")?,
            2 => {
                let mut any = Fields::new(v.bytes("KeyValue.value")?);
                while let Some((n, v)) = any.next()? {
                    if n == 1 {
                        value = Some(v.bytes("AnyValue.string_value")?);
                    } else {
                        // Another type set after a string: the last one wins.
                        value = None;
                    }
                }
            }
            _ => {}
        }
    }
    Ok((key, value))
}

/// Reads the attributes augur uses from a `Resource` message.
pub(crate) fn resource_attrs(res: &[u8]) -> Result<super::view::ResourceAttrs<'_>, WireError> {
    let mut attrs = super::view::ResourceAttrs::default();
    let mut f = Fields::new(res);
    while let Some((n, v)) = f.next()? {
        if n == 1 {
            add_attr(&mut attrs, v.bytes("Resource.attributes")?)?;
        }
    }
    Ok(attrs)
}

/// Adds one `KeyValue` to `attrs` if it is one augur reads.
#[inline]
pub(crate) fn add_attr<'a>(
    attrs: &mut super::view::ResourceAttrs<'a>,
    kv: &'a [u8],
) -> Result<(), WireError> {
    let (k, val) = string_attr(kv)?;
    if let Some(val) = val
        && is_resource_key(k)
    {
        attrs.set(utf8(k, "attribute key")?, utf8(val, "attribute value")?);
    }
    Ok(())
}

fn is_resource_key(k: &[u8]) -> bool {
    super::view::ResourceAttrs::KEYS
        .iter()
        .any(|key| key.as_bytes() == k)
}

/// Checks a string field's UTF-8.
#[inline]
pub(crate) fn utf8<'a>(b: &'a [u8], what: &str) -> Result<&'a str, WireError> {
    std::str::from_utf8(b).map_err(|_| WireError(format!("{what} is not valid UTF-8")))
}
