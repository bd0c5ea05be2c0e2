"""What an item name (a food or a drink) may be. Every rule has a message that names it."""
import unicodedata


class BadItem(ValueError):
    """The item name breaks a rule; the message says which and how to fix it."""


def check_item(item, max_length):
    """Return ``item`` unchanged if it is a valid name, else raise BadItem.

    Names are any UTF-8 text (``jamón``, ``🍎``, ``<b>`` too: it is escaped where shown),
    1 to ``max_length`` characters, not blank, with no control characters, no ``/`` and no
    ``%`` (a ``%`` left after decoding means the percent-encoding was invalid).
    """
    if not item.strip():
        raise BadItem("the item name is empty: put it in the URL, e.g. /comer/platano")
    if len(item) > max_length:
        raise BadItem(f"the item name is {len(item)} characters long; the limit is {max_length}")
    if "%" in item:
        raise BadItem(
            "the item name holds a '%' that is not valid percent-encoding: "
            "encode the name as UTF-8, e.g. /comer/jam%C3%B3n"
        )
    if "/" in item:
        raise BadItem("the item name must not contain '/': order one item per request")
    if item.isascii() and item.isprintable():
        return item  # no control character (ASCII's are all non-printable): the common case, at once
    for char in item:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            raise BadItem(
                f"the item name holds the control character U+{ord(char):04X}; "
                "use printable characters only"
            )
    return item
