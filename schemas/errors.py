"""Why a message could not be encoded or decoded.

    CodecError                 (retriable = False: the bytes will never decode; reject them)
     +-- TruncatedMessage      shorter than the single-object header
     +-- BadMagic              does not start with C3 01
     +-- UnknownSchema         fingerprint of no schema version kept in schemas/
     +-- Undecodable           header fine, body does not match the writer schema
     +-- WrongSchema           a valid message of another record type than the topic carries
     +-- SchemaMismatch        a record to encode does not match its schema
"""

from __future__ import annotations


class CodecError(Exception):
    code = "undecodable"
    retriable = False

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TruncatedMessage(CodecError):
    code = "truncated"


class BadMagic(CodecError):
    code = "bad_magic"


class UnknownSchema(CodecError):
    code = "unknown_schema"


class Undecodable(CodecError):
    code = "undecodable"


class WrongSchema(CodecError):
    code = "wrong_schema"


class SchemaMismatch(CodecError):
    code = "invalid_record"
