"""Books and the catalogue that holds them, in memory."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Book:
    isbn: str
    title: str
    author: str


@dataclass
class Catalogue:
    books: dict[str, Book] = field(default_factory=dict[str, Book])

    def add(self, book: Book) -> None:
        if book.isbn in self.books:
            raise ValueError(f"a book with ISBN {book.isbn} is already in the catalogue")
        self.books[book.isbn] = book

    def find(self, isbn: str) -> Book | None:
        return self.books.get(isbn)

    def all(self) -> list[Book]:
        return sorted(self.books.values(), key=lambda book: book.title)
