"""Word lists the generator draws from. Parallel arrays share an index (a name and its ASCII form).

All invented or generic: no list holds a real person. The non-ASCII names sit at the end of the name
lists so the generator can pick them at the configured rate (`NON_ASCII_FIRST`, `NON_ASCII_LAST`).
"""

from __future__ import annotations

import numpy as np


def _words(text: str) -> list[str]:
    return text.split()


_FIRST = _words("""
    James Mary Robert Patricia John Jennifer Michael Linda William Elizabeth David Barbara Richard Susan Joseph
    Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa Matthew Betty Anthony Margaret Mark Sandra
    Steven Ashley Andrew Emily Kenneth Donna Kevin Michelle Brian Carol Edward Amanda Ronald Melissa Timothy
    Deborah Jason Stephanie Jeffrey Rebecca Ryan Laura Jacob Sharon Gary Cynthia Nicholas Kathleen Eric Amy
    Maria Wei Aisha Carlos Priya Omar Mei Luis Fatima Ivan
""")
# Non-ASCII names as written, and as their owners spell them in an email address.
_FIRST_NON_ASCII = [
    ("José", "jose"), ("Zoë", "zoe"), ("Renée", "renee"), ("Seán", "sean"), ("Chloé", "chloe"),
    ("Jürgen", "juergen"), ("François", "francois"), ("Ángel", "angel"), ("Björn", "bjorn"), ("Łukasz", "lukasz"),
]  # fmt: skip
_LAST = _words("""
    Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson
    Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis
    Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera
    Campbell Mitchell Carter Roberts Kowalski Patel Chen Kim Novak Schmidt Okafor Haddad Sullivan Murphy
""")
_LAST_NON_ASCII = [
    ("García", "garcia"), ("O'Brien", "obrien"), ("Nguyễn", "nguyen"), ("Müller", "mueller"), ("Núñez", "nunez"),
    ("Søren", "soren"), ("D'Angelo", "dangelo"), ("Żukowski", "zukowski"), ("Ó Súilleabháin", "osuilleabhain"),
    ("Dvořák", "dvorak"),
]  # fmt: skip

FIRST_NAMES = np.array(_FIRST + [n for n, _ in _FIRST_NON_ASCII])
FIRST_NAMES_ASCII = np.array([n.lower() for n in _FIRST] + [a for _, a in _FIRST_NON_ASCII])
NON_ASCII_FIRST = len(_FIRST)  # first index of the non-ASCII first names
LAST_NAMES = np.array(_LAST + [n for n, _ in _LAST_NON_ASCII])
LAST_NAMES_ASCII = np.array([n.lower() for n in _LAST] + [a for _, a in _LAST_NON_ASCII])
NON_ASCII_LAST = len(_LAST)

# Nicknames a duplicate registration may use instead of the first name (aligned with FIRST_NAMES).
NICKNAMES = {
    "Robert": "Bob",
    "William": "Bill",
    "Richard": "Dick",
    "James": "Jim",
    "Elizabeth": "Liz",
    "Margaret": "Peggy",
    "Michael": "Mike",
    "Joseph": "Joe",
    "Thomas": "Tom",
    "Christopher": "Chris",
    "Daniel": "Dan",
    "Matthew": "Matt",
    "Anthony": "Tony",
    "Steven": "Steve",
    "Kenneth": "Ken",
    "Jennifer": "Jen",
    "Patricia": "Pat",
    "Nicholas": "Nick",
    "Edward": "Ed",
}
NICKNAME_OF = np.array([NICKNAMES.get(str(n), str(n)) for n in FIRST_NAMES])

STREETS = np.array(
    [
        "Main St",
        "Oak Ave",
        "Maple Dr",
        "Cedar Ln",
        "Elm St",
        "Washington Blvd",
        "Lake Shore Dr",
        "Park Ave",
        "Pine St",
        "Hillcrest Rd",
        "Sunset Blvd",
        "River Rd",
        "Church St",
        "Highland Ave",
        "Madison St",
        "Jefferson Ave",
        "Lincoln Way",
        "Prairie Ave",
        "Mill Rd",
        "Walnut St",
    ]
)
UNITS = np.array(["", "", "", "", " Apt 2", " Apt 3B", " Unit 101", " Suite 200"])

# City, state and a ZIP prefix, aligned.
CITIES = np.array(
    [
        "Chicago",
        "Springfield",
        "Peoria",
        "Naperville",
        "Rockford",
        "Joliet",
        "Aurora",
        "Evanston",
        "Champaign",
        "Bloomington",
        "Milwaukee",
        "Madison",
        "Gary",
        "Davenport",
        "St. Louis",
    ]
)
CITY_STATES = np.array(["IL", "IL", "IL", "IL", "IL", "IL", "IL", "IL", "IL", "IL", "WI", "WI", "IN", "IA", "MO"])
CITY_ZIP_PREFIX = np.array([606, 627, 616, 605, 611, 604, 605, 602, 618, 617, 532, 537, 464, 528, 631])
CITY_AREA_CODE = np.array([312, 217, 309, 630, 815, 815, 630, 847, 217, 309, 414, 608, 219, 563, 314])

# The first two names are used twice on purpose: same-named clinics in different cities.
LOCATION_NAMES = np.array(
    [
        "Riverside Family Clinic",
        "Riverside Family Clinic",
        "Lakeside Medical Center",
        "Northside Family Practice",
        "Prairie Health Partners",
        "Downtown Clinic",
    ]
)

SPECIALTIES = np.array(
    [
        "Family Medicine",
        "Internal Medicine",
        "Pediatrics",
        "Physical Therapy",
        "Chiropractic",
        "Orthopedics",
        "Dermatology",
        "Cardiology",
        "Endocrinology",
        "Sports Medicine",
    ]
)
PRACTICE_NAMES = np.array(
    [
        "Summit Orthopedics",
        "Heartland Cardiology",
        "Lakeview Dermatology",
        "Prairie Endocrine Associates",
        "Valley Imaging Center",
        "North Shore Internal Medicine",
        "Bridgeview Pediatrics",
        "Cornerstone Neurology",
    ]
)
EMAIL_DOMAINS = np.array(["example.com", "example.org", "example.net", "mail.example.com", "inbox.example.org"])
CLINIC_EMAIL_DOMAIN = "clinic.example"

CARRIER_NAMES = np.array(
    [
        "Blue Cross Blue Shield",
        "Aetna",
        "Cigna",
        "UnitedHealthcare",
        "Humana",
        "Medicare",
        "Medicaid",
        "Kaiser Permanente",
        "Anthem",
        "Molina Healthcare",
        "Centene",
        "Health Alliance",
        "Tricare",
        "Oscar Health",
        "Ambetter",
        "WellCare",
        "Meridian",
        "Bright Health",
        "Oxford Health Plans",
        "Highmark",
        "Premera",
        "Regence",
        "Priority Health",
        "HealthPartners",
        "Harvard Pilgrim",
        "Tufts Health Plan",
        "EmblemHealth",
        "Fidelis Care",
        "CareFirst",
        "Geisinger",
        "Medica",
        "Dean Health Plan",
        "Quartz",
        "Security Health Plan",
        "Network Health",
        "Wellmark",
        "Avera Health Plans",
        "Sanford Health Plan",
        "Paramount",
        "AultCare",
    ]
)

LANGUAGES = np.array(["English", "Spanish", "Polish", "Vietnamese", "Chinese", "Arabic", "German"])
LANGUAGE_WEIGHTS = np.array([0.78, 0.12, 0.03, 0.02, 0.02, 0.02, 0.01])
HOW_DID_YOU_HEAR = np.array(["Google", "Friend", "Doctor referral", "Insurance directory", "Ad", "Social media"])
ALLERGY_NOTES = np.array(
    [
        "None known",
        "Penicillin",
        "Latex",
        "Peanuts; shellfish",
        "Sulfa drugs",
        "Seasonal pollen",
        "Ibuprofen - rash",
        "Codeine (nausea)",
        "Bee stings, carries EpiPen",
        "NKDA",
    ]
)

APPOINTMENT_TYPES_SHORT = np.array(["Check-in", "Follow-up call", "Vitals check", "Injection"])
APPOINTMENT_TYPES_LONG = np.array(["Consultation", "New patient", "Follow-up visit", "Physical therapy", "Procedure"])
DURATIONS = np.array([5, 10, 15, 30, 45, 60])
DURATION_WEIGHTS = np.array([0.05, 0.10, 0.20, 0.35, 0.10, 0.20])  # 15 % under 15 minutes
APPOINTMENT_NOTES = np.array(
    [
        "Follow up in 2 weeks",
        "Patient running late",
        "Bring imaging",
        "Reschedule requested by patient",
        "Lower back pain, improving",
        "Annual physical",
        "Needs interpreter",
        "Post-op check",
        "Discussed home exercise program",
        "Referred for MRI",
    ]
)

CPT_CODES = np.array(
    [
        "99213",
        "99214",
        "99203",
        "99204",
        "97110",
        "97140",
        "97530",
        "98941",
        "20610",
        "82947",
        "93000",
        "94010",
        "36415",
        "80053",
        "71046",
        "29881",
        "64483",
        "72148",
    ]
)
ICD10_CODES = np.array(
    [
        "E11.9",
        "I10",
        "J45.909",
        "M54.5",
        "M25.561",
        "E78.5",
        "F41.1",
        "J06.9",
        "M79.1",
        "R51.9",
        "S39.012A",
        "Z00.00",
        "K21.9",
        "N39.0",
        "G43.909",
    ]
)
CPT_CENTS = np.array(
    [
        9_500,
        13_500,
        11_000,
        17_500,
        4_500,
        4_200,
        5_000,
        6_500,
        22_000,
        1_800,
        6_000,
        9_000,
        1_500,
        3_800,
        12_500,
        125_000,
        105_000,
        140_000,
    ]
)
PAYMENT_METHODS = np.array(["card", "cash", "check", "insurance", "eft"])
DENIAL_STATUSES = np.array(["none", "denied", "partial", "appealed"])
# A bill's claim status as practice systems write it (each derived from what was paid and denied).
CLAIM_STATUSES = np.array(["Billed", "Submitted", "Paid", "Partially Paid", "Denied", "Appealed", "Written Off"])
# Patient statuses, in the mixed case hand-kept statuses drift into.
PATIENT_STATUSES = np.array(["Active", "active", "ACTIVE", "Inactive", "inactive", "New", "Prospective", "Deceased"])
PATIENT_STATUS_WEIGHTS = np.array([0.50, 0.12, 0.04, 0.14, 0.04, 0.08, 0.05, 0.03])
# What clinics call the charts they try the software with.
TEST_FIRST_NAMES = np.array(["Test", "Test", "Demo"])
TEST_LAST_NAMES = np.array(["ZZZTEST", "Patient", "Zztest"])
DENIAL_WEIGHTS = np.array([0.75, 0.10, 0.11, 0.04])

# Structured lab tests: name, LOINC, unit, reference low/high (used to draw values and flags).
LAB_TESTS = np.array(
    [
        "Glucose",
        "HbA1c",
        "Cholesterol, total",
        "LDL Cholesterol",
        "TSH",
        "Hemoglobin",
        "White blood cells",
        "Creatinine",
        "Vitamin D, 25-OH",
        "Potassium",
    ]
)
LAB_LOINC = np.array(
    ["2345-7", "4548-4", "2093-3", "13457-7", "3016-3", "718-7", "6690-2", "2160-0", "1989-3", "2823-3"]
)
LAB_UNITS = np.array(["mg/dL", "%", "mg/dL", "mg/dL", "mIU/L", "g/dL", "10*3/uL", "mg/dL", "ng/mL", "mmol/L"])
LAB_LOW = np.array([70.0, 4.0, 125.0, 0.0, 0.4, 12.0, 4.5, 0.6, 30.0, 3.5])
LAB_HIGH = np.array([99.0, 5.6, 200.0, 100.0, 4.0, 17.5, 11.0, 1.3, 100.0, 5.1])
MESSY_LAB_VALUES = np.array(["<0.5", ">1000", "Negative", "5.2 H", "TNTC"])
REPORT_TESTS = np.array(
    ["MRI lumbar spine", "X-ray knee, 2 views", "Pathology report", "Ultrasound abdomen", "Urine culture"]
)
REPORT_LOINC = np.array(["24967-2", "36554-4", "60567-5", "24558-9", "630-4"])
REPORT_SENTENCES = np.array(
    [
        "Clinical history: chronic pain, evaluate for progression.",
        "Technique: standard protocol without contrast.",
        "Findings: no acute abnormality identified.",
        "Mild degenerative changes are noted without significant narrowing.",
        "Comparison is made with the prior study, which shows no interval change.",
        "Soft tissues are unremarkable.",
        "Specimen received in good condition; see scanned report for images.",
        "Impression: findings are within normal limits for age.",
        "Recommend clinical correlation and follow-up as indicated.",
        "Result discussed with the ordering provider by phone.",
    ]
)

DOCUMENT_CATEGORIES = np.array(["intake", "consent", "referral", "insurance_card", "lab_report", "imaging"])
DOCUMENT_STEMS = np.array(["intake_form", "consent_signed", "referral_letter", "insurance_card", "lab_report", "xray"])

# Communications: each channel as practice systems write it, its kind (0 call, 1 email, 2 SMS, 3 letter,
# 4 portal message) and how often it appears.
CHANNELS = np.array(["Phone", "phone call", "CALL", "Email", "E-mail", "SMS", "Text", "Letter", "Portal message"])
CHANNEL_KIND = np.array([0, 0, 0, 1, 1, 2, 2, 3, 4])
CHANNEL_WEIGHTS = np.array([0.33, 0.05, 0.03, 0.2, 0.03, 0.15, 0.05, 0.08, 0.08])
CALL_OUTCOMES = np.array(["Answered", "Left voicemail", "No answer", "Wrong number"])
CALL_OUTCOME_WEIGHTS = np.array([0.55, 0.25, 0.15, 0.05])
# Index 0: an automated reminder; then three per kind, in CHANNEL_KIND order.
COMMUNICATION_SUBJECTS = np.array(
    ["Appointment reminder",
     "Appointment confirmation", "Billing question", "Prescription refill",
     "Your upcoming appointment", "Your invoice", "Lab results available",
     "Reminder: appointment tomorrow", "Please call the clinic", "Running late",
     "Referral letter", "Recall letter", "Statement of account",
     "Question about my medication", "Request for records", "Message from your provider"]
)  # fmt: skip
COMMUNICATION_BODIES = np.array(
    ["discussed and confirmed with the patient.", "details sent; awaiting reply.", "patient will call back.",
     "no further action needed."]
)  # fmt: skip
