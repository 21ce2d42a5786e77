//! Sequences, maps and structs inside an argument or value.

use serde::ser::{
    Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant,
};

use super::map_key::MapKey;
use super::{write_array_header, CanonError, Encoder, Order};

/// Writes an array; the header goes first when the length is known and is
/// inserted afterwards when it is not (iterators without an exact size).
pub(crate) struct SeqEncoder<'a> {
    enc: &'a mut Encoder,
    declared: Option<usize>,
    region: usize,
    count: usize,
}

impl<'a> SeqEncoder<'a> {
    pub(super) fn new(enc: &'a mut Encoder, len: Option<usize>) -> Result<Self, CanonError> {
        let region = enc.out.len();
        if let Some(len) = len {
            write_array_header(&mut enc.out, len)?;
        }
        Ok(Self {
            enc,
            declared: len,
            region,
            count: 0,
        })
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        value.serialize(&mut *self.enc)?;
        self.count += 1;
        Ok(())
    }

    fn finish(self) -> Result<(), CanonError> {
        let count = self.count;
        match self.declared {
            // A header that disagrees with the elements would make every
            // later byte mean something else: refuse rather than hash it.
            Some(declared) if declared != count => Err(CanonError::invalid(format!(
                "a sequence declared {declared} elements but produced {count}"
            ))),
            Some(_) => Ok(()),
            None => self
                .enc
                .prepend_header(self.region, |out| write_array_header(out, count)),
        }
    }
}

impl SerializeSeq for SeqEncoder<'_> {
    type Ok = ();
    type Error = CanonError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }

    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl SerializeTuple for SeqEncoder<'_> {
    type Ok = ();
    type Error = CanonError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }

    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl SerializeTupleStruct for SeqEncoder<'_> {
    type Ok = ();
    type Error = CanonError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }

    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl SerializeTupleVariant for SeqEncoder<'_> {
    type Ok = ();
    type Error = CanonError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        self.element(value)
    }

    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

/// Writes map entries (or struct fields) unordered, then sorts them by key.
pub(crate) struct MapEncoder<'a> {
    enc: &'a mut Encoder,
    region: usize,
    base: usize,
    pending_key: Option<(usize, usize, usize)>,
}

impl<'a> MapEncoder<'a> {
    pub(super) fn new(enc: &'a mut Encoder) -> Self {
        let region = enc.out.len();
        let base = enc.entries.len();
        Self {
            enc,
            region,
            base,
            pending_key: None,
        }
    }

    fn value<T: Serialize + ?Sized>(
        &mut self,
        (start, key_start, key_end): (usize, usize, usize),
        value: &T,
    ) -> Result<(), CanonError> {
        value.serialize(&mut *self.enc).map_err(|e| {
            let key = self.enc.out.get(key_start..key_end).unwrap_or_default();
            e.in_field(&String::from_utf8_lossy(key))
        })?;
        self.enc.push_entry(start, key_start, key_end);
        Ok(())
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), CanonError> {
        let start = self.enc.out.len();
        let (key_start, key_end) = self.enc.write_key(name)?;
        self.value((start, key_start, key_end), value)
    }

    fn finish(self) -> Result<(), CanonError> {
        if self.pending_key.is_some() {
            return Err(CanonError::invalid(
                "a map serializer wrote a key without a value",
            ));
        }
        self.enc
            .finish_ordered(self.region, self.base, Order::MapKeys)
    }
}

impl SerializeMap for MapEncoder<'_> {
    type Ok = ();
    type Error = CanonError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), CanonError> {
        let start = self.enc.out.len();
        let (key_start, key_end) = key.serialize(MapKey::new(self.enc))?;
        self.pending_key = Some((start, key_start, key_end));
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), CanonError> {
        match self.pending_key.take() {
            Some(key) => self.value(key, value),
            None => Err(CanonError::invalid(
                "a map serializer wrote a value without a key",
            )),
        }
    }

    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl SerializeStruct for MapEncoder<'_> {
    type Ok = ();
    type Error = CanonError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}

impl SerializeStructVariant for MapEncoder<'_> {
    type Ok = ();
    type Error = CanonError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), CanonError> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), CanonError> {
        self.finish()
    }
}
