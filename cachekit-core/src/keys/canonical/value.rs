//! `Serializer` for values at any depth below the argument root.

use serde::ser::{Serialize, Serializer};

use super::compound::{MapEncoder, SeqEncoder};
use super::{CanonError, Encoder, SeqMode, SeqOnly, SET_MARKER};

impl<'a> Serializer for &'a mut Encoder {
    type Ok = ();
    type Error = CanonError;
    type SerializeSeq = SeqEncoder<'a>;
    type SerializeTuple = SeqEncoder<'a>;
    type SerializeTupleStruct = SeqEncoder<'a>;
    type SerializeTupleVariant = SeqEncoder<'a>;
    type SerializeMap = MapEncoder<'a>;
    type SerializeStruct = MapEncoder<'a>;
    type SerializeStructVariant = MapEncoder<'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), CanonError> {
        self.out.push(if v { 0xc3 } else { 0xc2 });
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), CanonError> {
        self.write_i64(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), CanonError> {
        self.write_i64(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), CanonError> {
        self.write_i64(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), CanonError> {
        self.write_i64(v);
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), CanonError> {
        self.write_i128(v)
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), CanonError> {
        self.write_u64(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), CanonError> {
        self.write_u64(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), CanonError> {
        self.write_u64(v.into());
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), CanonError> {
        self.write_u64(v);
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), CanonError> {
        match u64::try_from(v) {
            Ok(v) => {
                self.write_u64(v);
                Ok(())
            }
            Err(_) => Err(CanonError::invalid(format!(
                "integer {v} is above 2^64-1, the largest integer {} can hold",
                self.profile.context()
            ))),
        }
    }

    fn serialize_f32(self, v: f32) -> Result<(), CanonError> {
        self.write_f64(v.into())
    }

    fn serialize_f64(self, v: f64) -> Result<(), CanonError> {
        self.write_f64(v)
    }

    fn serialize_char(self, v: char) -> Result<(), CanonError> {
        self.write_str(v.encode_utf8(&mut [0; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), CanonError> {
        self.write_str(v)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), CanonError> {
        self.write_bin(v)
    }

    #[inline]
    fn serialize_none(self) -> Result<(), CanonError> {
        self.out.push(0xc0);
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), CanonError> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), CanonError> {
        self.out.push(0xc0);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), CanonError> {
        self.out.push(0xc0);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), CanonError> {
        self.write_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        if name == SET_MARKER {
            value.serialize(SeqOnly::new(self, SeqMode::Set))
        } else {
            value.serialize(self)
        }
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.write_variant_key(variant)?;
        value.serialize(self)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<SeqEncoder<'a>, CanonError> {
        SeqEncoder::new(self, len)
    }

    fn serialize_tuple(self, len: usize) -> Result<SeqEncoder<'a>, CanonError> {
        SeqEncoder::new(self, Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqEncoder<'a>, CanonError> {
        SeqEncoder::new(self, Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqEncoder<'a>, CanonError> {
        self.write_variant_key(variant)?;
        SeqEncoder::new(self, Some(len))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<MapEncoder<'a>, CanonError> {
        Ok(MapEncoder::new(self))
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<MapEncoder<'a>, CanonError> {
        Ok(MapEncoder::new(self))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<MapEncoder<'a>, CanonError> {
        self.write_variant_key(variant)?;
        Ok(MapEncoder::new(self))
    }

    // Human-readable forms are what other interop implementations see:
    // `uuid::Uuid` becomes its lowercase hyphenated string, `IpAddr` its
    // text, instead of opaque byte arrays.
    fn is_human_readable(&self) -> bool {
        true
    }
}
