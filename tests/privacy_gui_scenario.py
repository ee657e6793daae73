"""One chat turn with an image in the offscreen window, run by tests/test_privacy.py in a child process.

Not collected on its own (the name does not start with ``test_``): test_privacy.py starts pytest on
this file inside an empty network namespace and under a socket audit hook, so the window's start,
the model and projector loads, the image decode and encode and the answer all run with no network.
While the engine is still loaded, the process must own no TCP/UDP socket at all, listening or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gui_support
import numpy as np
import pytest
from network_sockets import inet_sockets_of
from PIL import Image
from pytestqt.qtbot import QtBot


@pytest.fixture
def gui(qtbot: QtBot) -> Iterator[gui_support.GuiHarness]:
    harness = gui_support.GuiHarness(qtbot)
    yield harness
    harness.close_all()


def test_chat_turn_with_an_image_uses_no_network(
    gui: gui_support.GuiHarness, tiny_model: Path, tmp_path: Path
) -> None:
    from model_io.synth.mmproj import write_mmproj_for

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / tiny_model.name).symlink_to(tiny_model)
    write_mmproj_for("tiny", folder / "gemma-3n-tiny-mmproj.gguf")
    picture = tmp_path / "cat.png"
    pixels = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(picture)

    window = gui.open(
        folder / tiny_model.name, dialogs=gui_support.FakeDialogs(image_files=[picture]), max_tokens=4
    )
    window.commands.attach_image.trigger()
    gui.qtbot.waitUntil(lambda: len(window.composer.attachments.items) == 1, timeout=10_000)
    gui.send(window, "What is in this picture?")
    gui.wait_answer(window)
    turn, answer = window.chat.conversation.messages[-2:]
    assert turn.attachment_kinds == ("image",) and answer.state == "done" and answer.text
    assert inet_sockets_of("self") == [], "the window owns network sockets"
