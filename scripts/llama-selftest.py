#!/usr/bin/env python3
"""Self-test of the embedded model's build: loads the GGUF the gateway serves and
generates a few tokens, in a child process, so that a build this CPU cannot run
(SIGILL, or SIGSEGV in a kernel the OS has not enabled) is caught at set-up, not at the
first chat. Prints one line with tokens/s; exits 1 with what failed and what to do.

    .venv/bin/python scripts/llama-selftest.py [--tokens N] [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import textwrap

# Runs in the child: everything that can crash stays there.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from adapters.inference.llama_server import locate_smollm2
    from llama_cpp import Llama

    tokens, runs, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    llm = Llama(model_path=str(locate_smollm2()), n_ctx=512, n_threads=threads or None,
                verbose=False, seed=1)
    rates, cpu, text = [], [], ""
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        out = llm.create_completion("The capital of France is", max_tokens=tokens,
                                    temperature=0.0)
        elapsed = time.perf_counter() - started
        generated = out["usage"]["completion_tokens"]
        text = out["choices"][0]["text"]
        rates.append(generated / elapsed if elapsed else 0.0)
        cpu.append((time.process_time() - cpu_started) / max(generated, 1))
    print(json.dumps({"tokens": generated, "tokens_per_s": max(rates),
                      "cpu_ms_per_token": min(cpu) * 1000, "text": text}))
    """
)


def describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="0: llama.cpp's default")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    command = [sys.executable, "-c", CHILD, str(args.tokens), str(args.runs), str(args.threads)]
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        sys.stderr.write(
            f"llama.cpp self-test: no answer within {args.timeout:.0f} s generating "
            f"{args.tokens} tokens\n"
        )
        return 1
    if child.returncode != 0:
        tail = "\n".join(child.stderr.strip().splitlines()[-8:])
        sys.stderr.write(
            f"llama.cpp self-test FAILED: generating {args.tokens} tokens with the embedded "
            f"model was {describe(child.returncode)}.\n"
            + (f"{tail}\n" if tail else "")
            + "The compiled llama.cpp cannot run on this CPU. scripts/setup.sh rebuilds it "
            "once with no optional CPU feature (LLAMA_CPU_BASELINE=1); if that fails too, "
            "report this output, or point the gateway at an inference server with "
            "MAX_SERVE_URL and install with scripts/setup.sh --server.\n"
        )
        return 1
    result = json.loads(child.stdout.strip().splitlines()[-1])
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        sys.stdout.write(
            f"llama.cpp self-test passed: {result['tokens']} tokens at "
            f"{result['tokens_per_s']:.1f} tokens/s ({result['text'].strip()[:40]!r})\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
