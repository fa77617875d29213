"""Word lists for the sandbox's generated customers: Norwegian-looking, with awkward cases on purpose.

Names that start with Æ, Ø, Å, digits, lower case and punctuation are part of the lists so that
clients which sort, slice or prefix-filter by name meet them. Nothing here is a real person's data.
"""

from __future__ import annotations

from typing import Final

# fmt: off

FIRST_NAMES: tuple[str, ...] = (
    "Ola", "Kari", "Per", "Lise", "Jan", "Anne", "Nils", "Ingrid", "Lars", "Marit", "Knut", "Hilde",
    "Bjørn", "Solveig", "Øyvind", "Øystein", "Ørjan", "Øydis", "Åse", "Åge", "Åsmund", "Åshild",
    "Ægir", "Ærling", "Aslak", "Astrid", "Berit", "Bodil", "Camilla", "Dagny", "Eirik", "Elin",
    "Erlend", "Frode", "Gunnar", "Guri", "Halvor", "Hanne", "Ivar", "Jorunn", "Kjell", "Kristin",
    "Leif", "Liv", "Magnus", "Mette", "Nora", "Odd", "Petter", "Ragnhild", "Rune", "Sigrid",
    "Sindre", "Siri", "Steinar", "Sunniva", "Terje", "Tone", "Trond", "Turid", "Uwe", "Vegard",
    "Vigdis", "Yngve", "Ylva", "Emma", "Jakob", "Sofie", "Emil", "Noah", "Olivia", "Oskar",
    "Sara", "Filip", "Maja", "Henrik", "Ella", "Aksel", "Leah", "Johannes", "Ida", "Mohammed",
    "Fatima", "Ahmed", "Aisha", "Piotr", "Agnieszka", "Tomasz", "Anna-Lena", "Jens Petter",
    "Karl Johan", "Mari-Ann", "Tor Erik", "Hans-Olav", "Siv", "Bård", "Gøril", "Håkon", "Jørgen",
    "Kåre", "Målfrid", "Pål", "Rønnaug", "Sølvi", "Tåle", "Dag", "Geir", "Hege", "Inger", "Jon",
    "Laila", "Morten", "Nina", "Otto", "Randi", "Stian", "Tove", "Unni", "Vidar", "Wenche",
    "Zainab", "Chen", "Nguyen Van", "José", "Zoë", "Linnéa",
)

LAST_NAMES: tuple[str, ...] = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen", "Lund",
    "Sørensen", "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg", "Svendsen", "Eide",
    "Knutsen", "Martinsen", "Paulsen", "Bakken", "Kristoffersen", "Mathisen", "Lie", "Amundsen",
    "Nguyen", "Rasmussen", "Ali", "Lunde", "Solheim", "Berge", "Moe", "Nygård", "Bakke",
    "Kristensen", "Fredriksen", "Holm", "Lien", "Hauge", "Christensen", "Andresen", "Nielsen",
    "Knudsen", "Evensen", "Sæther", "Aas", "Myhre", "Hanssen", "Ahmed", "Haugland", "Thomassen",
    "Sivertsen", "Simonsen", "Danielsen", "Berntsen", "Sandvik", "Rønning", "Arnesen", "Antonsen",
    "Næss", "Vik", "Haug", "Ellingsen", "Thorsen", "Edvardsen", "Birkeland", "Isaksen",
    "Gulbrandsen", "Ruud", "Aasen", "Strøm", "Myklebust", "Tangen", "Ødegård", "Eliassen", "Helland",
    "Bøe", "Jenssen", "Aune", "Mikkelsen", "Tveit", "Brekke", "Abrahamsen", "Madsen", "Khan",
    "Øien", "Østby", "Ødegaard", "Åsheim", "Årdal", "Ås", "Ærø", "Æsøy", "de Vries", "van der Linden",
    "von Krogh", "le Grand", "O'Brien", "McDonald", "Al-Hassan", "Kowalski", "Nowak", "Wiśniewski",
    "Lindqvist", "Virtanen", "Müller", "Garcia", "Fjeld-Hansen", "Brå", "Grønlie", "Skaug",
    "Tønnessen", "Wold", "Yttervik", "Zakariassen",
)

# First word of a company name: digits, punctuation, lower case and Æ/Ø/Å included on purpose.
COMPANY_WORDS: tuple[str, ...] = (
    "Nordlys", "Fjord", "Vestland", "Bergen", "Oslo", "Trondheim", "Stavanger", "Tromsø",
    "Bodø", "Ålesund", "Årdal", "Åsen", "Ærlig", "Ærø", "Øst", "Østfold", "Ørsta", "Øvre",
    "Fjell", "Havblikk", "Kystlys", "Solstreif", "Tindegard", "Bølgen", "Nordkapp", "Lofoten",
    "Hardanger", "Sogn", "Telemark", "Viken", "Agder", "Helgeland", "Fosen", "Jæren", "Nordhordland",
    "Hansen", "Olsen", "Berg", "Strand", "Lund", "Dahl", "Haugen", "Moe", "Bakke", "Lie",
    "Byggmester Larsen", "Rørlegger Nilsen", "Elektriker Eide", "Tannlege Moen", "Advokat Vik",
    "Regnskapshuset", "Malermester", "Snekker", "Bakeri", "Kafé", "Frisør", "Blomster",
    "Transportsentralen", "Maskinentreprenør", "Eiendomsutvikling", "Sjømat", "Laks", "Torsk",
    "Polar", "Aurora", "Midnattsol", "Viking", "Troll", "Nøkken", "Huldra", "Fossegrimen",
    "1881", "24Seven", "3T", "7 Fjell", "365 Regnskap", "2Go", "4Service", "100 Prosent",
    "«Bøker og Blekk»", "(Konkursbo) Hagen", "-Nett", "&Co", "'t Hus", ".Net Bergen", "#1 Pizza",
    "@Home", "+Pluss", "\"Fjordhytta\"",
    "eBud", "iFix", "de Nye Tannlegene", "van Dijk Import", "bRAND", "mKlær", "xTra",
    "Smith", "Nord", "Sør", "Vest", "Midt", "Indre", "Ytre", "Nedre", "Gamle", "Nye",
    "Alfa", "Beta", "Gamma", "Delta", "Omega", "Kvadrat", "Sirkel", "Linje", "Punkt", "Nøkkel",
    "Zenit", "Yme", "Ulvik", "Kvam", "Voss", "Odda", "Geilo", "Gol", "Røros", "Hamar",
)

COMPANY_SUFFIXES: tuple[str, ...] = (
    "AS", "AS", "AS", "AS", "AS", "AS", "ASA", "Eiendom AS", "Holding AS", "Bygg AS", "Regnskap AS",
    "Transport AS", "Consulting AS", "ENK", "DA", "ANS", "SA", "Invest AS", "Service AS",
    "Elektro AS", "Rør AS", "Maskin AS", "Fisk AS", "Design", "& Sønner AS", "Bil AS",
    "Handel AS", "Drift AS", "Gruppen AS", "Norge AS", "Nord AS", "Vest AS", "Øst AS", "Sør AS",
    "Utvikling AS", "Media AS", "Mat AS", "Helse AS", "IT AS", "Kompetanse AS", "Økonomi AS",
    "Ånd AS", "Forening", "Stiftelse", "BA", "NUF", "KS", "Sameie", "Borettslag", "Idrettslag",
)

PUBLIC_PLACES: tuple[str, ...] = (
    "Oslo", "Bergen", "Trondheim", "Stavanger", "Kristiansand", "Tromsø", "Drammen", "Fredrikstad",
    "Sandnes", "Sarpsborg", "Bodø", "Ålesund", "Sandefjord", "Arendal", "Tønsberg", "Haugesund",
    "Porsgrunn", "Skien", "Moss", "Hamar", "Lillehammer", "Gjøvik", "Molde", "Harstad", "Øygarden",
    "Ås", "Årdal", "Ørland", "Øyer", "Ørsta", "Alta", "Narvik", "Kongsberg", "Horten", "Halden",
    "Vestland", "Rogaland", "Nordland", "Innlandet", "Agder", "Troms", "Finnmark", "Viken", "Trøndelag",
)

PUBLIC_SUFFIXES: tuple[str, ...] = (
    "kommune", "kommune", "kommune", "fylkeskommune", "sokn", "brann og redning IKS", "havn KF",
    "kommunale eiendom KF", "legevakt", "bibliotek", "kulturskole", "renovasjon IKS",
)

# (postalCode, cityName) pairs that look like the real Norwegian ones (data rows, alike by nature).
NO_PLACES: tuple[tuple[str, str], ...] = (
    ("0150", "Oslo"), ("0484", "Oslo"), ("0661", "Oslo"), ("0283", "Oslo"), ("0560", "Oslo"),
    ("0977", "Oslo"), ("5003", "Bergen"), ("5063", "Bergen"), ("5146", "Fyllingsdalen"),
    ("7010", "Trondheim"), ("7030", "Trondheim"), ("4006", "Stavanger"), ("4021", "Stavanger"),
    ("9008", "Tromsø"), ("9019", "Tromsø"), ("1532", "Moss"), ("3015", "Drammen"), ("2317", "Hamar"),
    ("8006", "Bodø"), ("6002", "Ålesund"), ("6010", "Ålesund"), ("4610", "Kristiansand S"),
    ("1606", "Fredrikstad"), ("3110", "Tønsberg"), ("2821", "Gjøvik"), ("9600", "Hammerfest"),
    ("9900", "Kirkenes"), ("6800", "Førde"), ("3900", "Porsgrunn"), ("1440", "Drøbak"),
    ("8300", "Svolvær"), ("9170", "Longyearbyen"), ("5200", "Os"), ("1337", "Sandvika"),
    ("2000", "Lillestrøm"), ("7600", "Levanger"), ("4400", "Flekkefjord"), ("3600", "Kongsberg"),
    ("6100", "Volda"), ("8514", "Narvik"), ("1430", "Ås"), ("6884", "Øvre Årdal"), ("2618", "Lillehammer"),
    ("3510", "Hønefoss"), ("4836", "Arendal"), ("5527", "Haugesund"), ("6413", "Molde"),
    ("7500", "Stjørdal"), ("8622", "Mo i Rana"), ("9510", "Alta"), ("1767", "Halden"),
    ("3212", "Sandefjord"), ("3187", "Horten"), ("2408", "Elverum"), ("4307", "Sandnes"),
    ("5700", "Voss"), ("6856", "Sogndal"), ("7374", "Røros"), ("9405", "Harstad"), ("3716", "Skien"),
)

FOREIGN_PLACES: tuple[tuple[str, str, str, str], ...] = (
    ("11122", "Stockholm", "Sweden", "SE"),
    ("41103", "Göteborg", "Sweden", "SE"),
    ("2100", "København Ø", "Denmark", "DK"),
    ("00100", "Helsinki", "Finland", "FI"),
    ("10115", "Berlin", "Germany", "DE"),
    ("SW1A 1AA", "London", "United Kingdom", "GB"),
    ("00-001", "Warszawa", "Poland", "PL"),
    ("LT-01100", "Vilnius", "Lithuania", "LT"),
)

STREETS: tuple[str, ...] = (
    "Storgata", "Kirkeveien", "Øvre Slottsgate", "Åsveien", "Bjørnstjerne Bjørnsons gate",
    "Fjellveien", "Sjøgata", "Strandveien", "Granåsen", "Løkkeveien", "Bryggen", "Kongens gate",
    "Dronningens gate", "Markveien", "Thereses gate", "Ullevålsveien", "Trondheimsveien",
    "Haakon VIIs gate", "Olav Tryggvasons gate", "Nedre Vollgate", "Ærfuglveien", "Østre Aker vei",
    "Ørnevegen", "Åkerblomsvegen", "Skolevegen", "Bakkebygrenda", "Lia", "Furulia", "Solbakken",
    "Eikelundveien", "Hegdehaugsveien", "Professor Dahls gate", "Sandviksveien", "Kalfarveien",
    "Nygårdsgaten", "Elvegata", "Havnegata", "Industriveien", "Næringsveien", "Tollbugata",
)

EMAIL_DOMAINS: tuple[str, ...] = (
    "eksempel.no", "example.no", "testarmrest.no", "online.example", "post.example", "mail.example",
)

CUSTOMER_MESSAGES: tuple[str, ...] = (
    "Keep it up!", "Takk for handelen!", "Husk å betale i tide.", "Kontakt oss ved spørsmål.",
    "Gjelder avtale 2024-17.", "Fakturer per kvartal.", "Ønsker papirfaktura.",
)

NACE_CODES: tuple[str, ...] = (
    "G46.5.1", "G46.5.2", "F41.2.0", "F43.2.1", "C10.2.0", "M69.2.0", "I56.1.0", "H49.4.1",
    "J62.0.1", "Q86.2.3", "S96.0.2", "A03.2.1", "L68.2.0", "N81.2.1",
)

DISTRICT_CODES: tuple[tuple[str, ...], ...] = (
    (), (), ("NW",), ("SE", "SE1"), ("N",), ("W", "W2"), ("E",), ("MID",), ("S", "S3"),
)

AR_RULES: tuple[tuple[str, ...], ...] = (
    (), (), (), (), ("NoBalFwd",), ("NoInterest",), ("NoReminderFee", "NoBalFwd"),
)

# Registration status codes. "" (with no date) means never registered / unknown.
PERSON_REGISTRATION_CODES: tuple[str, ...] = ("RESIDENT", "EMIGRATED", "DECEASED", "MISSING", "FICTITIOUS")
COMPANY_REGISTRATION_CODES: tuple[str, ...] = ("ACTIVE", "BANKRUPT", "LIQUIDATION", "DISSOLVED", "FICTITIOUS")

NICKNAMES: tuple[str, ...] = ("Oa", "Kaja", "Pelle", "Lisa", "Nisse", "Bjønn", "Åsa", "Ø", "Tusse", "Mini")

# fmt: on
# fmt: off

# ---------------------------------------------------------------------------------------------
# Name mixes (`--name-mix`). "classic": the lists above. "dense": dense name families whose prefixes
# exceed the 10,000 cap (from about 200,000 customers on) and continue through characters a fixed
# alphabet of digits, A-Z and ÆØÅ does not have: a letter with a diacritic at the first position
# ("Über Bergen AS") and deeper ("Gómez ...", "Kari Çelik"), an apostrophe ("D'Angelo ..."), a full stop
# and a space ("Dr. ..."), a hyphen ("Anne-Marie ..."), an ampersand ("Holm & Co ..."), a lower-case
# particle ("van der ..."). "stuck": names a prefix cannot separate: a sixth of all customers are
# called exactly "Fjord AS", some have an empty name or one that starts with a space.

NAME_MIXES: tuple[str, ...] = ("classic", "dense", "stuck")

# (first byte below, first name) for persons in the dense mix; the rest get FIRST_NAMES
DENSE_FIRST: tuple[tuple[int, str], ...] = (
    (56, "Kari"), (96, "Anne-Marie"), (104, "Anne"), (110, "Anne-Lise"), (146, "D'Angelo"),
    (182, "Gómez"), (210, "Dr."),
)
DENSE_LAST: tuple[str, ...] = (*LAST_NAMES, "Çelik", "Öztürk", "Ünal", "Šimić", "Żak", "Ådnøy", "Østli")
# (first byte below, company word) for companies in the dense mix; the rest get COMPANY_WORDS
DENSE_COMPANY: tuple[tuple[int, str], ...] = ((80, "Über"), (130, "Holm & Co"))
DENSE_PARTICLE: Final = "van der"  # register-style persons: "van der Berg Kari"
STUCK_NAME: Final = "Fjord AS"

# fmt: on
