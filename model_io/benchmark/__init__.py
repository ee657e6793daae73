"""``gemma-desk bench``'s measuring code, Qt-free and importable from an installed app.

* :mod:`~model_io.benchmark.runner` — runs the parts in order and assembles the report;
* :mod:`~model_io.benchmark.text_bench` — prefill, decode and first token, app against llama-bench,
  in interleaved rounds;
* :mod:`~model_io.benchmark.media_bench` — image encode against llama-mtmd-cli, audio tower
  real-time factor, push-to-talk release-to-first-token;
* :mod:`~model_io.benchmark.roofline` — memory copy bandwidth and the bytes a decoded token reads;
* :mod:`~model_io.benchmark.llama_bench` — finding and running llama.cpp's own tools;
* :mod:`~model_io.benchmark.app_engine` — the app's engine, driven and timed as the CLI/GUI use it;
* :mod:`~model_io.benchmark.machine` — machine facts, load average, peak RSS;
* :mod:`~model_io.benchmark.report` — the JSON layout and the printed table.
"""
