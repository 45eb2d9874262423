"""Docker-like random container names: `adjective_surname` (Docker's namesgenerator,
a shorter list of notable scientists and engineers)."""

from __future__ import annotations

import secrets

ADJECTIVES = (
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome",
    "blissful", "bold", "boring", "brave", "charming", "clever", "compassionate",
    "competent", "confident", "cool", "dazzling", "determined", "distracted", "dreamy",
    "eager", "ecstatic", "elastic", "elated", "elegant", "eloquent", "epic", "exciting",
    "fervent", "festive", "flamboyant", "focused", "friendly", "frosty", "funny", "gallant",
    "gifted", "goofy", "gracious", "great", "happy", "hardcore", "heuristic", "hopeful",
    "hungry", "infallible", "inspiring", "intelligent", "interesting", "jolly", "jovial",
    "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "musing",
    "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective",
    "optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless", "quirky",
    "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad", "serene", "sharp",
    "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender",
    "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous",
    "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
)

SURNAMES = (
    "agnesi", "albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bell",
    "bhabha", "blackwell", "bohr", "booth", "borg", "bose", "brattain", "brown", "carson",
    "cerf", "chandrasekhar", "clarke", "curie", "darwin", "davinci", "dijkstra", "einstein",
    "elion", "engelbart", "euclid", "euler", "fermat", "fermi", "feynman", "franklin",
    "galileo", "gauss", "goldberg", "goodall", "hamilton", "hawking", "heisenberg",
    "hellman", "hertz", "hodgkin", "hopper", "hypatia", "jackson", "jepsen", "johnson",
    "kalam", "kepler", "khorana", "knuth", "kowalevski", "lalande", "lamarr", "lamport",
    "leakey", "lederberg", "liskov", "lovelace", "lumiere", "mayer", "mccarthy",
    "mcclintock", "meitner", "mendel", "merkle", "minsky", "mirzakhani", "morse", "napier",
    "newton", "nobel", "noether", "pare", "pascal", "pasteur", "payne", "perlman", "pike",
    "poincare", "ptolemy", "raman", "ramanujan", "ritchie", "rosalind", "sammet", "shannon",
    "shockley", "sinoussi", "stallman", "swanson", "tesla", "thompson", "torvalds",
    "turing", "varahamihira", "volhard", "wescoff", "wiles", "williams", "wozniak", "wright",
    "yalow", "yonath",
)


def random_name() -> str:
    while True:
        name = f"{secrets.choice(ADJECTIVES)}_{secrets.choice(SURNAMES)}"
        if name != "boring_wozniak":  # Docker's one rule: Steve Wozniak is not boring
            return name
