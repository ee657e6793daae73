"""Markdown to QTextDocument with code in a monospace font on a tinted background from the palette.

Qt's GitHub-dialect importer already parses fences and inline code; this adds the system fixed font
and a background derived from the current palette, so code stays readable in light and dark themes.
"""

from __future__ import annotations

from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPalette,
    QTextBlock,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)


def blend(base: QColor, over: QColor, amount: float) -> QColor:
    """``over`` laid on ``base`` at ``amount`` opacity: tints that work on light and dark palettes."""
    return QColor(
        round(base.red() + (over.red() - base.red()) * amount),
        round(base.green() + (over.green() - base.green()) * amount),
        round(base.blue() + (over.blue() - base.blue()) * amount),
    )


def code_background(palette: QPalette) -> QColor:
    return blend(palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text), 0.08)


def render_markdown(document: QTextDocument, text: str, palette: QPalette) -> None:
    """Replace ``document``'s content with ``text`` rendered as GitHub-flavoured Markdown."""
    document.setMarkdown(text, QTextDocument.MarkdownFeature.MarkdownDialectGitHub)
    _style_code(document, palette)


def _is_code_block(block_format: QTextBlockFormat) -> bool:
    return block_format.hasProperty(QTextFormat.Property.BlockCodeFence) or block_format.hasProperty(
        QTextFormat.Property.BlockCodeLanguage
    )


def _style_code(document: QTextDocument, palette: QPalette) -> None:
    """Collect code ranges first, then format them: editing while iterating would split fragments."""
    mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    background = code_background(palette)
    blocks, spans = _code_ranges(document)
    cursor = QTextCursor(document)
    for position in blocks:
        cursor.setPosition(position)
        block_format = cursor.blockFormat()
        block_format.setBackground(background)
        cursor.setBlockFormat(block_format)
        block = document.findBlock(position)
        _set_font(cursor, position, position + block.length() - 1, mono)
    for start, end in spans:
        _set_font(cursor, start, end, mono, background)


def _code_ranges(document: QTextDocument) -> tuple[list[int], list[tuple[int, int]]]:
    """Positions of code blocks, and (start, end) of inline code spans elsewhere."""
    blocks: list[int] = []
    spans: list[tuple[int, int]] = []
    block = document.begin()
    while block.isValid():
        if _is_code_block(block.blockFormat()):
            blocks.append(block.position())
        else:
            spans.extend(_inline_code(block))
        block = block.next()
    return blocks, spans


def _inline_code(block: QTextBlock) -> list[tuple[int, int]]:
    spans = []
    iterator = block.begin()
    while not iterator.atEnd():
        fragment = iterator.fragment()
        char_format = fragment.charFormat()
        if char_format.fontFixedPitch() or "monospace" in (char_format.fontFamilies() or []):
            spans.append((fragment.position(), fragment.position() + fragment.length()))
        iterator += 1
    return spans


def _set_font(
    cursor: QTextCursor, start: int, end: int, mono: QFont, background: QColor | None = None
) -> None:
    if end <= start:
        return
    cursor.setPosition(start)
    cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    char_format = QTextCharFormat()
    char_format.setFontFamilies([mono.family()])
    char_format.setFontFixedPitch(True)
    if background is not None:
        char_format.setBackground(background)
    cursor.mergeCharFormat(char_format)
