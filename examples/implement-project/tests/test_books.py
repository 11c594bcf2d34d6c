import unittest

from bookshelf.books import Book, Catalogue


class CatalogueTest(unittest.TestCase):
    def test_books_are_listed_by_title(self) -> None:
        catalogue = Catalogue()
        catalogue.add(Book("2", "Dune", "Herbert"))
        catalogue.add(Book("1", "Alice", "Carroll"))
        assert [book.title for book in catalogue.all()] == ["Alice", "Dune"]

    def test_an_isbn_is_added_once(self) -> None:
        catalogue = Catalogue()
        catalogue.add(Book("1", "Alice", "Carroll"))
        with self.assertRaises(ValueError):
            catalogue.add(Book("1", "Alice again", "Carroll"))
        assert catalogue.find("1") == Book("1", "Alice", "Carroll")


if __name__ == "__main__":
    unittest.main()
