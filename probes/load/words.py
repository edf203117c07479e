"""Prompt words: common English words that are ONE token each, with or without a leading space.

A text prompt of ``N`` words from this list is about ``N`` tokens. Checked (December 2026) with the real
tokenizers shipped inside the ``mistral_common`` package of the vLLM CPU environment: Tekken
(``tekken_240911``, ``tekken_240718``: tiktoken-style byte BPE, 131k ids) and SentencePiece
(``tokenizer.model.v1``, ``mistral_instruct_tokenizer_240323.model.v3``: Llama-2-style, 32k ids). Each word
is one token alone and one token after a space in all four, and 1,000 random words joined by single
spaces encode to exactly 1,000 tokens in each. Byte-BPE tokenizers with a pre-tokenizer that splits before
a space and letters (GPT-4's cl100k/o200k, Llama 3, Qwen) treat each `` word`` apart, so common words
stay one token there too; this was not checked here (no such tokenizer file offline). A chat template or a
BOS token adds a few tokens on top. The measured prompt length always comes from the server
(``usage.prompt_tokens``), never from this approximation.

Candidates were 463 hand-picked common nouns, verbs, adjectives and adverbs; 361 passed; the 357 below
are those minus four grim ones (kill, die, dead, war), so a hosted API's moderation has nothing to trip on.

>>> len(WORDS), len(set(WORDS)), WORDS[:3]
(357, 357, ('time', 'year', 'people'))
"""

from __future__ import annotations

__all__ = ["WORDS"]

_WORDS_TEXT = """
    time year people way day man thing woman life child world school state family student group country
    problem hand part place case week company system program question work number night point home water
    room mother area money story fact month lot right book eye job word business issue side kind head
    house service friend father power hour game line end member law car city community name president
    team idea kid body information back parent face others level office door health person art history
    party result change reason girl guy moment air teacher force education foot boy age policy music
    market nation plan interest effect class control care field development role rate heart show leader
    light voice mind price report son view relationship town road arm value building action model season
    tax director position player record paper space ground form event official center site project
    activity star table need court cost figure street image phone data picture piece land product doctor
    wall patient worker news test movie love support step computer type film tree source organization
    hair window population song energy sea be have do say go can get make know think take see come look
    use find give call try ask leave put mean keep let begin help talk turn start play run move like
    live hold bring write sit stand lose pay include continue set learn lead watch follow stop create
    read allow add open walk win offer remember consider appear buy wait serve send expect build fall
    cut raise pass require pull good new first last long great little own other old big high different
    small large next early important public bad same able late hard major better economic strong
    possible whole free true full special clear certain personal red available likely short single
    current wrong private past foreign fine common poor natural similar hot central ready simple left
    physical general blue dark close legal final main green nice popular also just very well only even
    there still here then now never always often again ever almost later today really soon already river
    spring forest bridge castle engine letter signal button orange yellow quiet bright
"""
WORDS: tuple[str, ...] = tuple(_WORDS_TEXT.split())
