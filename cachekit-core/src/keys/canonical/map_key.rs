//! Map keys: strings only.
//!
//! interop/v1 orders map entries by the code points of their keys, which is
//! defined for strings alone; Python and JavaScript encoders reject other
//! key types too. Accepting integer keys here would produce keys no other
//! implementation can reproduce, so they are refused with a hint instead.

use serde::ser::{Impossible, Serialize, Serializer};

use super::{CanonError, Encoder, SET_MARKER};

/// Payload range of the written key string.
type KeyRange = (usize, usize);

pub(super) struct MapKey<'a> {
    enc: &'a mut Encoder,
}

impl<'a> MapKey<'a> {
    pub(super) fn new(enc: &'a mut Encoder) -> Self {
        Self { enc }
    }

    fn reject(&self, what: &str) -> CanonError {
        CanonError::invalid(format!(
            "map keys in {} must be strings, got {what}; \
             convert the keys to String (for example a BTreeMap<String, _>)",
            self.enc.profile.context()
        ))
    }
}

impl<'a> Serializer for MapKey<'a> {
    type Ok = KeyRange;
    type Error = CanonError;
    type SerializeSeq = Impossible<KeyRange, CanonError>;
    type SerializeTuple = Impossible<KeyRange, CanonError>;
    type SerializeTupleStruct = Impossible<KeyRange, CanonError>;
    type SerializeTupleVariant = Impossible<KeyRange, CanonError>;
    type SerializeMap = Impossible<KeyRange, CanonError>;
    type SerializeStruct = Impossible<KeyRange, CanonError>;
    type SerializeStructVariant = Impossible<KeyRange, CanonError>;

    fn serialize_str(self, v: &str) -> Result<KeyRange, CanonError> {
        self.enc.write_key(v)
    }

    fn serialize_char(self, v: char) -> Result<KeyRange, CanonError> {
        self.enc.write_key(v.encode_utf8(&mut [0; 4]))
    }

    // Enum keys are written by variant name, matching how a unit variant
    // encodes as a value.
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<KeyRange, CanonError> {
        self.enc.write_key(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<KeyRange, CanonError> {
        if name == SET_MARKER {
            Err(self.reject("a set"))
        } else {
            value.serialize(self)
        }
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<KeyRange, CanonError> {
        Err(self.reject("an Option"))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<KeyRange, CanonError> {
        Err(self.reject("an enum variant with data"))
    }

    fn is_human_readable(&self) -> bool {
        true
    }

    reject_methods! {
        serialize_bool(v: bool) -> KeyRange => "a bool";
        serialize_i8(v: i8) -> KeyRange => "an integer";
        serialize_i16(v: i16) -> KeyRange => "an integer";
        serialize_i32(v: i32) -> KeyRange => "an integer";
        serialize_i64(v: i64) -> KeyRange => "an integer";
        serialize_i128(v: i128) -> KeyRange => "an integer";
        serialize_u8(v: u8) -> KeyRange => "an integer";
        serialize_u16(v: u16) -> KeyRange => "an integer";
        serialize_u32(v: u32) -> KeyRange => "an integer";
        serialize_u64(v: u64) -> KeyRange => "an integer";
        serialize_u128(v: u128) -> KeyRange => "an integer";
        serialize_f32(v: f32) -> KeyRange => "a float";
        serialize_f64(v: f64) -> KeyRange => "a float";
        serialize_bytes(v: &[u8]) -> KeyRange => "bytes";
        serialize_none() -> KeyRange => "None";
        serialize_unit() -> KeyRange => "()";
        serialize_unit_struct(name: &'static str) -> KeyRange => "a unit struct";
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq => "a sequence";
        serialize_tuple(len: usize) -> Self::SerializeTuple => "a tuple";
        serialize_tuple_struct(name: &'static str, len: usize)
            -> Self::SerializeTupleStruct => "a tuple struct";
        serialize_tuple_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
            -> Self::SerializeTupleVariant => "an enum variant with data";
        serialize_map(len: Option<usize>) -> Self::SerializeMap => "a map";
        serialize_struct(name: &'static str, len: usize) -> Self::SerializeStruct => "a struct";
        serialize_struct_variant(name: &'static str, index: u32, variant: &'static str, len: usize)
            -> Self::SerializeStructVariant => "an enum variant with data";
    }
}
