"""Window-wide commands with their keyboard shortcuts, and the menus that list them.

Kept apart from the window so shortcuts are declared in one place and can be asserted in tests.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu


class WindowActions(QObject):
    """QActions owned by the main window; controllers connect to their ``triggered`` signals."""

    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.open_model = self._action(QKeySequence.StandardKey.Open)
        self.choose_projector = self._action()
        self.manage_models = self._action("Ctrl+Shift+M")
        self.attach_image = self._action("Ctrl+Shift+A")
        self.show_camera = self._action("Ctrl+Shift+K")
        self.show_camera.setCheckable(True)
        self.new_chat = self._action(QKeySequence.StandardKey.New)
        self.export_markdown = self._action()
        self.export_json = self._action()
        self.settings = self._action(QKeySequence.StandardKey.Preferences, "Ctrl+,")
        self.quit = self._action(QKeySequence.StandardKey.Quit, "Ctrl+Q")
        self.send = self._action("Ctrl+Return", "Ctrl+Enter")
        self.stop = self._action("Esc")
        self.regenerate = self._action("Ctrl+R")
        self.edit_last = self._action("Ctrl+E")
        self.focus_composer = self._action("Ctrl+L")
        self.about = self._action()
        self.quit.setMenuRole(QAction.MenuRole.QuitRole)
        self.settings.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.about.setMenuRole(QAction.MenuRole.AboutRole)
        self._menus: dict[str, QMenu] = {}
        self._build_menus(window)
        self.retranslate()

    def _action(self, *shortcuts: QKeySequence.StandardKey | str) -> QAction:
        action = QAction(self.parent())
        sequences: list[QKeySequence] = []
        for shortcut in shortcuts:
            if isinstance(shortcut, str):
                sequences.append(QKeySequence(shortcut))
            else:
                sequences.extend(QKeySequence.keyBindings(shortcut))
        unique = list(dict.fromkeys(s.toString() for s in sequences if not s.isEmpty()))
        action.setShortcuts([QKeySequence(s) for s in unique])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        return action

    def _build_menus(self, window: QMainWindow) -> None:
        bar = window.menuBar()
        file_menu = [self.open_model, self.choose_projector, self.manage_models, self.new_chat, None]
        file_menu += [self.export_markdown, self.export_json, None]
        conversation_menu = [self.send, self.stop, self.regenerate, self.edit_last, None, self.focus_composer]
        conversation_menu += [None, self.attach_image, self.show_camera]
        layout: dict[str, list[QAction | None]] = {
            "file": [*file_menu, self.settings, None, self.quit],
            "conversation": conversation_menu,
            "help": [self.about],
        }
        for key, actions in layout.items():
            menu = bar.addMenu("")
            self._menus[key] = menu
            for action in actions:
                if action is None:
                    menu.addSeparator()
                else:
                    menu.addAction(action)

    def retranslate(self) -> None:
        titles = {
            "file": self.tr("&File"),
            "conversation": self.tr("&Conversation"),
            "help": self.tr("&Help"),
        }
        for key, title in titles.items():
            self._menus[key].setTitle(title)
        texts = {
            self.open_model: self.tr("&Open model…"),
            self.choose_projector: self.tr("Choose &projector (mmproj)…"),
            self.manage_models: self.tr("&Models: download, import, build…"),
            self.attach_image: self.tr("&Attach image…"),
            self.show_camera: self.tr("Show &camera"),
            self.new_chat: self.tr("&New chat"),
            self.export_markdown: self.tr("Export as &Markdown…"),
            self.export_json: self.tr("Export as &JSON…"),
            self.settings: self.tr("&Settings…"),
            self.quit: self.tr("&Quit"),
            self.send: self.tr("&Send"),
            self.stop: self.tr("S&top answer"),
            self.regenerate: self.tr("&Regenerate answer"),
            self.edit_last: self.tr("&Edit last message"),
            self.focus_composer: self.tr("&Focus message box"),
            self.about: self.tr("&About Gemma Desk"),
        }
        for action, text in texts.items():
            action.setText(text)
