"""Errors raised by the tokenizer package; each message names the problem and the fix."""


class VocabularyError(ValueError):
    """A vocabulary file is missing, unreadable, or not one this package can invert."""


class TrainingError(ValueError):
    """Vocabulary training cannot proceed with the given input or settings."""


def invalid_utf8_message(data: bytes, error: UnicodeDecodeError) -> str:
    bad = data[error.start:error.end]
    return (f"text is not valid UTF-8: byte(s) {bad.hex(' ')} at offset {error.start} "
            f"({error.reason}); decode the source with its real encoding before tokenizing")


def unpaired_surrogate_message(text: str) -> str:
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            return (f"text contains an unpaired surrogate U+{ord(char):04X} at index {index}; "
                    "it is not valid Unicode (decode bytes with errors='strict' or 'replace')")
    return "text cannot be converted to UTF-8"
