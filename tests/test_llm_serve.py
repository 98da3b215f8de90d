"""Serving the packaged model from llama.cpp: the GGUF file and the server command (no server started here;
the recorded exchange with a real one is replayed in test_llm_http.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrec.errors import ModelError
from llmrec.llm.serve import gguf_path, main, server_command


@pytest.mark.real_model
def test_the_packaged_gguf_is_found_verified_and_served_on_localhost(tmp_path: Path, capsys):
    path = gguf_path("smollm2-135m-instruct", tmp_path)
    assert path.is_file() and path.read_bytes()[:4] == b"GGUF"
    command = server_command("smollm2-135m-instruct", port=9999, cache_dir=tmp_path)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--model") + 1] == str(path)
    assert command[command.index("--model_alias") + 1] == "smollm2-135m-instruct"
    assert main(["gguf", "smollm2-135m-instruct", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(path)


def test_a_model_without_packaged_gguf_is_one_clear_error(capsys):
    with pytest.raises(ModelError, match="no packaged GGUF"):
        gguf_path("all-minilm-l6-v2")
    assert main(["gguf", "all-minilm-l6-v2"]) == 1
    assert "no packaged GGUF" in capsys.readouterr().err


def test_the_server_command_keeps_logprobs_on_and_names_the_engines_interpreter(monkeypatch, capsys):
    """llama-cpp-python answers ``logprobs`` (the ranking scores) only with logits_all on, its default."""
    from llmrec.llm import serve

    monkeypatch.setattr(serve, "gguf_path", lambda name, cache_dir=None: Path("/models/m one.gguf"))
    command = server_command("m", port=8081, threads=3, python="/opt/llamacpp/bin/python")
    assert command[:3] == ["/opt/llamacpp/bin/python", "-m", "llama_cpp.server"]
    assert "--logits_all" not in command
    assert (command[command.index("--port") + 1], command[command.index("--n_threads") + 1]) == ("8081", "3")
    assert main(["command", "m", "--python", "/opt/llamacpp/bin/python", "--context", "2048"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("/opt/llamacpp/bin/python -m llama_cpp.server --model '/models/m one.gguf'")
    assert "--n_ctx 2048" in printed and "--host 127.0.0.1" in printed
