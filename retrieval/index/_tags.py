"""Tags: short labels on stored images, kept beside the records (metadata: never re-embedded).

A tag is 1 to :data:`MAX_TAG_LENGTH` characters after stripping surrounding spaces, with no comma
(the upload form takes comma-separated lists) and no control character; an image holds at most
:data:`MAX_TAGS`. Tags are compared exactly (case-sensitive). A record's tags are always a sorted
tuple without repeats: :func:`clean_tags` makes one. :class:`TagEdit` is one change applied to
many images: ``replace`` (all their tags become these), else ``add`` then ``remove``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from retrieval.errors import ConfigError

__all__ = ["MAX_TAGS", "MAX_TAG_LENGTH", "TagEdit", "clean_tags"]

MAX_TAG_LENGTH = 64
MAX_TAGS = 64


def _clean_one(tag: object) -> str:
    if not isinstance(tag, str):
        raise ConfigError(f"a tag is a string, got {type(tag).__name__}")
    text = tag.strip()
    if not text or len(text) > MAX_TAG_LENGTH:
        raise ConfigError(f"a tag has 1 to {MAX_TAG_LENGTH} characters, got {tag!r}")
    if "," in text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(f"a tag holds no comma or control character, got {tag!r}")
    return text


def clean_tags(tags: Iterable[object]) -> tuple[str, ...]:
    """``tags`` stripped, checked, without repeats, sorted; :class:`ConfigError` for a bad one
    or more than :data:`MAX_TAGS`."""
    if isinstance(tags, str):
        raise ConfigError(f"tags are a list of strings, got the string {tags!r}")
    out = tuple(sorted({_clean_one(t) for t in tags}))
    if len(out) > MAX_TAGS:
        raise ConfigError(f"an image holds at most {MAX_TAGS} tags, got {len(out)}")
    return out


@dataclass(frozen=True)
class TagEdit:
    """``replace`` (when not None): the images' tags become exactly these; else ``add`` are
    added and then ``remove`` removed. Built through :meth:`of`, which cleans every tag."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    replace: tuple[str, ...] | None = None

    @classmethod
    def of(cls, add: Iterable[object] = (), remove: Iterable[object] = (),
           replace: Iterable[object] | None = None) -> TagEdit:
        edit = cls(clean_tags(add), clean_tags(remove),
                   None if replace is None else clean_tags(replace))
        if edit.replace is not None and (edit.add or edit.remove):
            raise ConfigError("set the tags, or add and remove some: not both")
        both = sorted(set(edit.add) & set(edit.remove))
        if both:
            raise ConfigError(f"tags both added and removed: {', '.join(both)}")
        return edit

    @property
    def empty(self) -> bool:
        return self.replace is None and not self.add and not self.remove

    def applied(self, tags: Iterable[str]) -> tuple[str, ...]:
        """What an image's ``tags`` become (:class:`ConfigError` past :data:`MAX_TAGS`)."""
        if self.replace is not None:
            return self.replace
        return clean_tags((set(tags) | set(self.add)) - set(self.remove))
