"""Opens a model folder written by `npm run export` with Hugging Face transformers (the reference
implementation) and answers one request read from stdin as JSON:

    {"ids": [...], "text": "...", "new_tokens": N}

with, on stdout, {"class", "loading": {missing, unexpected, mismatched}, "logits": [ids x vocab],
"encoded": the tokenizer's ids for text, "generated": N greedy new tokens after ids}.
Offline: local files only."""
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    folder = sys.argv[1]
    request = json.load(sys.stdin)
    model, info = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32, output_loading_info=True)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    ids = torch.tensor([request["ids"]])
    with torch.no_grad():
        logits = model(ids).logits[0]
        generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=request["new_tokens"], do_sample=False)
    json.dump({
        "class": type(model).__name__,
        "loading": {key: sorted(map(str, info[key])) for key in ("missing_keys", "unexpected_keys", "mismatched_keys")},
        "logits": logits.flatten().tolist(),
        "encoded": tokenizer.encode(request["text"], add_special_tokens=False),
        "generated": generated[0, ids.shape[1]:].tolist(),
    }, sys.stdout)


if __name__ == "__main__":
    main()
