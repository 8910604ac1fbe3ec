//! The canonical encoding that a plan's hash covers: the plan's JSON value (as the plan
//! file writes it, compact) in a simple binary framing, so that hashing never has to
//! format or escape text.
//!
//! Every JSON value is one tag byte and its content: `0` null; `1` false; `2` true; `3` a
//! signed integer (8 bytes, little-endian); `4` an unsigned integer (8 bytes,
//! little-endian); `5` a string (its UTF-8 length as 4 bytes little-endian, then its bytes);
//! `6` an array (its elements, then `7`); `8` an object (key string and value, in the
//! order the plan file writes them, then `7`). The hash is BLAKE3 over the encoding of
//! `{"format_version", "language_version", "plan"}`.

use serde::ser::{self, Serialize};

/// A serde serializer into the canonical framing, writing into a BLAKE3 hasher.
pub struct Canonical<'h> {
    hasher: &'h mut blake3::Hasher,
    buffer: Vec<u8>,
}

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const UINT: u8 = 4;
const STRING: u8 = 5;
const ARRAY: u8 = 6;
const END: u8 = 7;
const OBJECT: u8 = 8;

/// Serialisation into the framing cannot fail; this is the error type serde wants.
#[derive(Debug)]
pub struct Never(String);

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(message: T) -> Never {
        Never(message.to_string())
    }
}

impl<'h> Canonical<'h> {
    pub fn new(hasher: &'h mut blake3::Hasher) -> Canonical<'h> {
        Canonical { hasher, buffer: Vec::with_capacity(1 << 16) }
    }

    fn byte(&mut self, byte: u8) {
        self.buffer.push(byte);
        self.spill();
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        self.spill();
    }

    fn spill(&mut self) {
        if self.buffer.len() >= 1 << 16 {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
    }

    fn string(&mut self, text: &str) {
        // INVARIANT: plan files are far below 4 GiB.
        let length = (text.len() as u32).to_le_bytes();
        self.buffer.push(STRING);
        self.buffer.extend_from_slice(&length);
        self.bytes(text.as_bytes());
    }

    /// Writes what is buffered into the hasher.
    pub fn finish(mut self) {
        self.hasher.update(&self.buffer);
        self.buffer.clear();
    }
}

impl<'a, 'h> ser::Serializer for &'a mut Canonical<'h> {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, value: bool) -> Result<(), Never> {
        self.byte(if value { TRUE } else { FALSE });
        Ok(())
    }
    fn serialize_i8(self, value: i8) -> Result<(), Never> {
        self.serialize_i64(i64::from(value))
    }
    fn serialize_i16(self, value: i16) -> Result<(), Never> {
        self.serialize_i64(i64::from(value))
    }
    fn serialize_i32(self, value: i32) -> Result<(), Never> {
        self.serialize_i64(i64::from(value))
    }
    fn serialize_i64(self, value: i64) -> Result<(), Never> {
        // JSON does not tell a non-negative signed number from an unsigned one.
        if value >= 0 {
            return self.serialize_u64(value as u64);
        }
        self.byte(INT);
        self.bytes(&value.to_le_bytes());
        Ok(())
    }
    fn serialize_u8(self, value: u8) -> Result<(), Never> {
        self.serialize_u64(u64::from(value))
    }
    fn serialize_u16(self, value: u16) -> Result<(), Never> {
        self.serialize_u64(u64::from(value))
    }
    fn serialize_u32(self, value: u32) -> Result<(), Never> {
        self.serialize_u64(u64::from(value))
    }
    fn serialize_u64(self, value: u64) -> Result<(), Never> {
        self.byte(UINT);
        self.bytes(&value.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Never> {
        Err(ser::Error::custom("plans hold no floating-point numbers"))
    }
    fn serialize_f64(self, _: f64) -> Result<(), Never> {
        Err(ser::Error::custom("plans hold no floating-point numbers"))
    }
    fn serialize_char(self, value: char) -> Result<(), Never> {
        self.string(value.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, value: &str) -> Result<(), Never> {
        self.string(value);
        Ok(())
    }
    fn serialize_bytes(self, value: &[u8]) -> Result<(), Never> {
        self.byte(ARRAY);
        for byte in value {
            self.byte(UINT);
            self.bytes(&u64::from(*byte).to_le_bytes());
        }
        self.byte(END);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.byte(NULL);
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        self.byte(NULL);
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Never> {
        self.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.byte(OBJECT);
        self.string(variant);
        value.serialize(&mut *self)?;
        self.byte(END);
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        self.byte(ARRAY);
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        self.serialize_seq(None)
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Self, Never> {
        self.byte(OBJECT);
        self.string(variant);
        self.byte(ARRAY);
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        self.byte(OBJECT);
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Self, Never> {
        self.byte(OBJECT);
        self.string(variant);
        self.byte(OBJECT);
        Ok(self)
    }
    fn collect_str<T: ?Sized + std::fmt::Display>(self, value: &T) -> Result<(), Never> {
        self.string(&value.to_string());
        Ok(())
    }
}

/// The compound serialisers: elements in order, then the end tag(s).
macro_rules! compound {
    ($trait:ident, $method:ident, $ends:expr) => {
        impl ser::$trait for &mut Canonical<'_> {
            type Ok = ();
            type Error = Never;
            fn $method<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                for _ in 0..$ends {
                    self.byte(END);
                }
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element, 1);
compound!(SerializeTuple, serialize_element, 1);
compound!(SerializeTupleStruct, serialize_field, 1);
compound!(SerializeTupleVariant, serialize_field, 2);

impl ser::SerializeMap for &mut Canonical<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Never> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        self.byte(END);
        Ok(())
    }
}

/// Structs are objects: each field's name, then its value.
macro_rules! fields {
    ($trait:ident, $ends:expr) => {
        impl ser::$trait for &mut Canonical<'_> {
            type Ok = ();
            type Error = Never;
            fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Never> {
                self.string(key);
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                for _ in 0..$ends {
                    self.byte(END);
                }
                Ok(())
            }
        }
    };
}

fields!(SerializeStruct, 1);
fields!(SerializeStructVariant, 2);
