//! Places that must hold a sequence: the root argument list and the
//! collection inside a [`crate::keys::Set`].

use serde::ser::{
    Impossible, Serialize, SerializeSeq, SerializeTuple, SerializeTupleStruct, Serializer,
};

use super::{write_array_header, CanonError, Encoder, Order, SET_MARKER};

/// What the sequence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqMode {
    /// The flat argument array; errors name the argument's position.
    Root,
    /// A set: elements sorted by encoded bytes and deduplicated.
    Set,
}

pub(crate) struct SeqOnly<'a> {
    enc: &'a mut Encoder,
    mode: SeqMode,
}

impl<'a> SeqOnly<'a> {
    #[inline]
    pub(crate) fn new(enc: &'a mut Encoder, mode: SeqMode) -> Self {
        Self { enc, mode }
    }

    fn reject(&self, what: &str) -> CanonError {
        match self.mode {
            SeqMode::Root => CanonError::invalid(format!(
                "cache key arguments must serialize as a sequence or tuple \
                 (the flat argument list), got {what}; \
                 pass one argument as a 1-tuple `(x,)`"
            )),
            SeqMode::Set => CanonError::invalid(format!(
                "keys::Set must wrap a collection that serializes as a sequence, got {what}"
            )),
        }
    }

    #[inline]
    fn collect(self, len: Option<usize>) -> Result<SeqCollector<'a>, CanonError> {
        let region = self.enc.out.len();
        let base = self.enc.entries.len();
        // A set's length is only known after deduplication.
        if let (SeqMode::Root, Some(len)) = (self.mode, len) {
            write_array_header(&mut self.enc.out, len)?;
        }
        Ok(SeqCollector {
            enc: self.enc,
            mode: self.mode,
            declared: len,
            region,
            base,
            count: 0,
        })
    }
}

impl<'a> Serializer for SeqOnly<'a> {
    type Ok = ();
    type Error = CanonError;
    type SerializeSeq = SeqCollector<'a>;
    type SerializeTuple = SeqCollector<'a>;
    type SerializeTupleStruct = SeqCollector<'a>;
    type SerializeTupleVariant = Impossible<(), CanonError>;
    type SerializeMap = Impossible<(), CanonError>;
    type SerializeStruct = Impossible<(), CanonError>;
    type SerializeStructVariant = Impossible<(), CanonError>;

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqCollector<'a>, CanonError> {
        self.collect(len)
    }

    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<SeqCollector<'a>, CanonError> {
        self.collect(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqCollector<'a>, CanonError> {
        self.collect(Some(len))
    }

    // `()` is the argument list of a function without arguments.
    fn serialize_unit(self) -> Result<(), CanonError> {
        match self.mode {
            SeqMode::Root => write_array_header(&mut self.enc.out, 0),
            SeqMode::Set => Err(self.reject("()")),
        }
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CanonError> {
        self.serialize_unit()
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        let mode = if name == SET_MARKER {
            SeqMode::Set
        } else {
            self.mode
        };
        value.serialize(SeqOnly::new(self.enc, mode))
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), CanonError> {
        Err(self.reject("an Option"))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), CanonError> {
        Err(self.reject("an enum variant"))
    }

    fn is_human_readable(&self) -> bool {
        true
    }

    reject_methods! {
        serialize_bool(v: bool) -> () => "a bool";
        serialize_i8(v: i8) -> () => "an integer";
        serialize_i16(v: i16) -> () => "an integer";
        serialize_i32(v: i32) -> () => "an integer";
        serialize_i64(v: i64) -> () => "an integer";
        serialize_i128(v: i128) -> () => "an integer";
        serialize_u8(v: u8) -> () => "an integer";
        serialize_u16(v: u16) -> () => "an integer";
        serialize_u32(v: u32) -> () => "an integer";
        serialize_u64(v: u64) -> () => "an integer";
        serialize_u128(v: u128) -> () => "an integer";
        serialize_f32(v: f32) -> () => "a float";
        serialize_f64(v: f64) -> () => "a float";
        serialize_char(v: char) -> () => "a char";
        serialize_str(v: &str) -> () => "a string";
        serialize_bytes(v: &[u8]) -> () => "bytes";
        serialize_none() -> () => "None";
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str)
            -> () => "an enum variant";
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
            -> Self::SerializeTupleVariant => "an enum variant";
        serialize_map(len: Option<usize>) -> Self::SerializeMap => "a map";
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct => "a struct";
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
            -> Self::SerializeStructVariant => "an enum variant";
    }
}

pub(crate) struct SeqCollector<'a> {
    enc: &'a mut Encoder,
    mode: SeqMode,
    declared: Option<usize>,
    region: usize,
    base: usize,
    count: usize,
}

impl SeqCollector<'_> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        match self.mode {
            SeqMode::Root => value
                .serialize(&mut *self.enc)
                .map_err(|e| e.in_argument(self.count))?,
            SeqMode::Set => {
                let start = self.enc.out.len();
                value.serialize(&mut *self.enc)?;
                let end = self.enc.out.len();
                self.enc.push_entry(start, start, end);
            }
        }
        self.count += 1;
        Ok(())
    }

    #[inline]
    fn finish(self) -> Result<(), CanonError> {
        let count = self.count;
        match (self.mode, self.declared) {
            (SeqMode::Set, _) => self
                .enc
                .finish_ordered(self.region, self.base, Order::SetBytes),
            (SeqMode::Root, Some(declared)) if declared != count => Err(CanonError::invalid(
                format!("the argument list declared {declared} elements but produced {count}"),
            )),
            (SeqMode::Root, Some(_)) => Ok(()),
            (SeqMode::Root, None) => self
                .enc
                .prepend_header(self.region, |out| write_array_header(out, count)),
        }
    }
}

impl SerializeSeq for SeqCollector<'_> {
    type Ok = ();
    type Error = CanonError;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl SerializeTuple for SeqCollector<'_> {
    type Ok = ();
    type Error = CanonError;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl SerializeTupleStruct for SeqCollector<'_> {
    type Ok = ();
    type Error = CanonError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }

    #[inline]
    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}
