"""Sentence templates and word lists for the synthetic clinical notes (``synth.py``).

Placeholders in braces are filled per note. PHI placeholders (labelled): ``name`` / ``NAME``
(full name, upper-cased), ``given``, ``family``, ``fnr`` and ``pid`` (IDs), ``phone``, ``phone2``,
``age``, ``birth``, ``admitted``, ``discharged``, ``followup``, ``past`` (dates), ``hospital``,
``ref_hospital``, ``city``, ``address`` (locations). Everything else is unlabelled filler,
including the distractor numbers (blood pressure, doses, ICD codes, lab values, clock times),
so a model has to use context rather than "digits mean PHI".

Each language has: ``titles`` per note kind; ``fields`` (header lines: the first group always
appears, then a random subset); ``body`` per note kind and ``clinical`` (shared sentences), each a
list of groups of alternative sentences; and ``closing`` lines.
"""

from __future__ import annotations

from typing import TypedDict

Groups = list[list[str]]


class Templates(TypedDict):
    titles: dict[str, list[str]]
    fields: Groups
    body: dict[str, Groups]
    clinical: Groups
    closing: list[str]


NB: Templates = {
    "titles": {
        "admission": [
            "Innkomstjournal",
            "INNKOMSTJOURNAL",
            "Innkomstnotat, {ward}",
            "Journalnotat ved innleggelse",
        ],
        "referral": ["Henvisning", "HENVISNING TIL SPESIALISTHELSETJENESTEN", "Henvisning til poliklinikk"],
        "discharge": ["Epikrise", "EPIKRISE", "Utskrivningsnotat", "Epikrise fra {ward}"],
        "nursing": ["Sykepleienotat", "Sykepleierapport, {ward}", "Rapport nattevakt"],
    },
    "fields": [
        ["Navn: {name}", "Pasient: {name}", "Pasientnavn: {name}", "NAVN: {NAME}"],
        ["Fødselsnummer: {fnr}", "Fnr.: {fnr}", "F.nr. {fnr}", "Personnummer: {fnr}", "Fødselsnr: {fnr}"],
        ["Født: {birth}", "Fødselsdato: {birth}", "F. {birth}"],
        ["Adresse: {address}", "Bostedsadresse: {address}"],
        ["Telefon: {phone}", "Tlf.: {phone}", "Mobil: {phone}", "Tlf {phone}"],
        ["Pasientnr.: {pid}", "Journalnummer: {pid}", "Pas.id {pid}"],
        ["Innlagt: {admitted}", "Innleggelsesdato: {admitted}", "Dato: {admitted}"],
        ["Pårørende (datter) tlf. {phone2}", "Nærmeste pårørende: ektefelle, tlf. {phone2}"],
    ],
    "body": {
        "admission": [
            [
                "{given} er en {age} år gammel {sexnoun} som innlegges ved {hospital} {admitted} "
                "med {diagnosis}.",
                "{title} {family} ({age} år) innlegges {admitted} ved {hospital} grunnet {diagnosis}.",
                "Pasienten er en {age}-årig {sexnoun} fra {city} som kommer inn med {diagnosis}.",
            ],
            [
                "{Pron} ble henvist av fastlege i {city} etter {days} dager med forverring.",
                "Bor alene i {city}, klarer seg selv i hjemmet.",
                "Kommer med ambulanse fra hjemmet i {city}.",
            ],
            [
                "Tidligere innlagt ved {ref_hospital} {past} for tilsvarende plager.",
                "Kjent fra {ref_hospital}, sist vurdert {past}.",
            ],
            ["Pasienten kan nås på {phone}.", "Ønsker at datter kontaktes på {phone2}."],
        ],
        "referral": [
            [
                "Henviser {name}, {age} år, til vurdering ved {hospital}.",
                "Takk for at dere ser på {title} {family}, en {age} år gammel {sexnoun} med {diagnosis}.",
                "Jeg henviser herved {given} {family} (f. {birth}) for utredning av {diagnosis}.",
            ],
            [
                "{Pron} har hatt symptomer siden {past} og er bosatt i {city}.",
                "Symptomdebut {past}, gradvis forverring siste {days} dager.",
            ],
            [
                "Pasienten ønsker time etter {followup} og nås på {phone}.",
                "Vennligst kontakt pasienten på tlf. {phone} for timeavtale.",
            ],
            ["Tidligere utredet ved {ref_hospital}.", "Har tidligere fått behandling på {ref_hospital}."],
        ],
        "discharge": [
            [
                "{given} {family}, {age} år, var innlagt ved {hospital} fra {admitted} til {discharged}.",
                "Pasienten ble innlagt {admitted} og utskrives {discharged} i stabil tilstand.",
                "{title} {family} ({age} år) skrives ut {discharged} etter behandling for {diagnosis}.",
            ],
            [
                "{Pron} utskrives til hjemmet i {city}.",
                "Reiser hjem til {address}.",
                "Overflyttes til {ref_hospital} for videre rehabilitering.",
            ],
            [
                "Kontroll ved poliklinikken {followup}.",
                "Ny time hos fastlege {followup}, ring {phone} ved spørsmål.",
                "Pasienten kalles inn til kontroll {followup}.",
            ],
            [
                "Pasienten er informert og samtykker i planen.",
                "{given} har fått skriftlig informasjon om videre forløp.",
            ],
        ],
        "nursing": [
            [
                "Kl. {time}: {given} har sovet godt i natt.",
                "Kl. {time}: {title} {family} er urolig og ringer ofte på.",
                "Kl. {time}: Pasienten ({age} år) er våken og orientert.",
            ],
            [
                "Pårørende ringte fra {phone2} og ble orientert.",
                "Datter ringte kl. {time} fra {phone2}.",
                "Ektefelle kommer på besøk fra {city} i morgen.",
            ],
            ["Planlagt utskrivning {discharged}.", "Ny vurdering av lege {followup}."],
            ["Mobiliseres med rullator, spiser godt.", "Drikker lite, oppfordret til økt væskeinntak."],
        ],
    },
    "clinical": [
        [
            "BT {bp} mmHg, puls {pulse}, temp {temp} °C, SpO2 {spo2} %.",
            "Ved innkomst: BT {bp}, puls {pulse} regelmessig, temperatur {temp}.",
            "Vitalia: BT {bp}, P {pulse}, T {temp}, metning {spo2} % på romluft.",
        ],
        [
            "CRP {crp}, Hb {hb} g/dL, leukocytter {leuk}.",
            "Blodprøver: Hb {hb}, CRP {crp}, kreatinin {creat}.",
        ],
        [
            "Faste medisiner: {drug} {dose}.",
            "Startet med {drug} {dose}.",
            "Fortsetter med {drug} {dose} og {drug2}.",
        ],
        ["Diagnose: {icd} {diagnosis}.", "ICD-10: {icd}.", "Hoveddiagnose {icd} ({diagnosis})."],
        ["Vekt {weight} kg. NEWS {news}.", "Smerte VAS {vas}, NEWS {news}."],
    ],
    "closing": [
        "Med vennlig hilsen\nlege i spesialisering, {ward}",
        "Signert av overlege, {ward}",
        "Diktert {admitted}, ikke korrekturlest.",
        "",
    ],
}

EN: Templates = {
    "titles": {
        "admission": ["Admission Note", "ADMISSION NOTE", "History and Physical", "Admission note, {ward}"],
        "referral": ["Referral Letter", "REFERRAL", "Outpatient referral"],
        "discharge": ["Discharge Summary", "DISCHARGE SUMMARY", "Discharge note, {ward}"],
        "nursing": ["Nursing Note", "Nursing progress note, {ward}", "Night shift report"],
    },
    "fields": [
        ["Name: {name}", "Patient: {name}", "Patient name: {name}", "NAME: {NAME}"],
        ["National ID: {fnr}", "Personal number: {fnr}", "ID no.: {fnr}"],
        ["DOB: {birth}", "Date of birth: {birth}", "Born: {birth}"],
        ["Address: {address}", "Home address: {address}"],
        ["Phone: {phone}", "Tel: {phone}", "Mobile: {phone}"],
        ["MRN: {pid}", "Patient ID: {pid}", "Record no. {pid}"],
        ["Admitted: {admitted}", "Admission date: {admitted}", "Date: {admitted}"],
        ["Next of kin (daughter): {phone2}", "Emergency contact: spouse, tel. {phone2}"],
    ],
    "body": {
        "admission": [
            [
                "{given} is a {age}-year-old {sexnoun} admitted to {hospital} on {admitted} "
                "with {diagnosis}.",
                "{title} {family}, aged {age}, presented to {hospital} on {admitted} with {diagnosis}.",
                "The patient is a {age} year old {sexnoun} from {city} presenting with {diagnosis}.",
            ],
            [
                "{Pron} was referred by the GP in {city} after {days} days of worsening symptoms.",
                "Lives alone in {city} and is independent at home.",
                "Brought in by ambulance from home in {city}.",
            ],
            [
                "Previously admitted to {ref_hospital} on {past} with similar complaints.",
                "Known to {ref_hospital}, last seen {past}.",
            ],
            ["The patient can be reached at {phone}.", "Daughter asks to be contacted on {phone2}."],
        ],
        "referral": [
            [
                "I am referring {name}, {age} years old, for assessment at {hospital}.",
                "Thank you for seeing {title} {family}, a {age}-year-old {sexnoun} with {diagnosis}.",
                "Please assess {given} {family} (DOB {birth}) for {diagnosis}.",
            ],
            [
                "{Pron} has had symptoms since {past} and lives in {city}.",
                "Onset {past}, gradually worse over the last {days} days.",
            ],
            [
                "The patient would prefer an appointment after {followup} and can be reached at {phone}.",
                "Please call the patient on {phone} to schedule.",
            ],
            ["Previously investigated at {ref_hospital}.", "Has been treated at {ref_hospital} before."],
        ],
        "discharge": [
            [
                "{given} {family}, {age} years old, was admitted to {hospital} "
                "from {admitted} to {discharged}.",
                "The patient was admitted on {admitted} and discharged on {discharged} in stable condition.",
                "{title} {family} ({age} y/o) is discharged on {discharged} after treatment for {diagnosis}.",
            ],
            [
                "{Pron} is discharged home to {city}.",
                "Going home to {address}.",
                "Transferred to {ref_hospital} for further rehabilitation.",
            ],
            [
                "Follow-up in clinic on {followup}.",
                "GP review on {followup}; call {phone} with questions.",
                "The patient will be recalled for review on {followup}.",
            ],
            [
                "The patient understands and agrees with the plan.",
                "{given} received written discharge information.",
            ],
        ],
        "nursing": [
            [
                "{time}: {given} slept well overnight.",
                "{time}: {title} {family} is restless and using the call bell often.",
                "{time}: Patient ({age} yrs) awake and oriented.",
            ],
            [
                "Relative phoned from {phone2} and was updated.",
                "Daughter called at {time} from {phone2}.",
                "Spouse is visiting from {city} tomorrow.",
            ],
            ["Planned discharge {discharged}.", "Doctor to review again on {followup}."],
            ["Mobilising with a frame, eating well.", "Poor fluid intake, encouraged to drink more."],
        ],
    },
    "clinical": [
        [
            "BP {bp} mmHg, HR {pulse}, temp {temp} °C, SpO2 {spo2}%.",
            "On arrival: BP {bp}, pulse {pulse} regular, temperature {temp}.",
            "Vitals: BP {bp}, P {pulse}, T {temp}, sats {spo2}% on room air.",
        ],
        ["CRP {crp}, Hb {hb} g/dL, WBC {leuk}.", "Bloods: Hb {hb}, CRP {crp}, creatinine {creat}."],
        [
            "Regular medication: {drug} {dose}.",
            "Started on {drug} {dose}.",
            "Continues {drug} {dose} and {drug2}.",
        ],
        ["Diagnosis: {icd} {diagnosis}.", "ICD-10: {icd}.", "Primary diagnosis {icd} ({diagnosis})."],
        ["Weight {weight} kg. NEWS {news}.", "Pain score {vas}/10, NEWS {news}."],
    ],
    "closing": [
        "Kind regards,\nregistrar, {ward}",
        "Signed by the attending physician, {ward}",
        "Dictated {admitted}, not proofread.",
        "",
    ],
}

# (ICD-10 code, Norwegian, English)
DIAGNOSES = [
    ("J18.9", "pneumoni", "pneumonia"),
    ("I21.4", "NSTEMI", "NSTEMI"),
    ("K35.8", "akutt appendisitt", "acute appendicitis"),
    ("E11.9", "diabetes mellitus type 2", "type 2 diabetes"),
    ("I48.9", "atrieflimmer", "atrial fibrillation"),
    ("J44.1", "KOLS-forverring", "COPD exacerbation"),
    ("N39.0", "urinveisinfeksjon", "urinary tract infection"),
    ("S72.0", "lårhalsbrudd", "hip fracture"),
    ("I63.9", "hjerneinfarkt", "cerebral infarction"),
    ("A41.9", "sepsis", "sepsis"),
    ("K85.9", "akutt pankreatitt", "acute pancreatitis"),
    ("F32.1", "moderat depressiv episode", "moderate depressive episode"),
    ("I50.9", "hjertesvikt", "heart failure"),
]
DRUGS = [
    ("Paracet", ["1 g x 4", "500 mg x 3"]),
    ("Albyl-E", ["75 mg x 1"]),
    ("Metformin", ["500 mg x 2", "1000 mg x 2"]),
    ("Eliquis", ["5 mg x 2", "2,5 mg x 2"]),
    ("Furix", ["40 mg x 1", "20 mg x 2"]),
    ("Selo-Zok", ["50 mg x 1", "100 mg x 1"]),
    ("Atorvastatin", ["20 mg x 1", "40 mg x 1"]),
    ("Zopiklon", ["3,75 mg vesp."]),
    ("Cefotaxim", ["1 g x 3 iv", "2 g x 3 iv"]),
]
WARDS_NB = ["medisinsk avdeling", "kirurgisk post", "hjerteavdelingen", "geriatrisk sengepost", "lungeposten"]
WARDS_EN = [
    "general medicine",
    "the surgical ward",
    "cardiology",
    "the geriatric unit",
    "respiratory medicine",
]

MONTHS_NB = [
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
]
MONTHS_EN = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

# Faker's Norwegian names are mostly ASCII; these make sure æ, ø and å are common.
GIVEN_NB_MALE = ["Bjørn", "Øyvind", "Håkon", "Ståle", "Jørgen", "Åsmund", "Søren", "Pål", "Tårald", "Ørjan"]
GIVEN_NB_FEMALE = [
    "Åse",
    "Sølvi",
    "Bjørg",
    "Gøril",
    "Kjærsti",
    "Mette-Måren",
    "Ragnhild",
    "Signe",
    "Tone",
    "Åshild",
]
FAMILY_NB = [
    "Sæther",
    "Bråten",
    "Sørensen",
    "Løvås",
    "Ødegård",
    "Grønli",
    "Kværnes",
    "Bækkelund",
    "Strømme",
    "Kjølstad",
    "Ørbeck",
    "Haugnæss",
    "Fjærli",
    "Nygård",
    "Bjørnstad",
]
CITIES_NB = [
    "Tromsø",
    "Ålesund",
    "Bodø",
    "Førde",
    "Lørenskog",
    "Sandnessjøen",
    "Mo i Rana",
    "Hønefoss",
    "Kristiansund",
    "Bærum",
    "Jessheim",
    "Gjøvik",
    "Sortland",
    "Trondheim",
    "Bergen",
    "Stavanger",
    "Hamar",
    "Skien",
    "Fredrikstad",
    "Kirkenes",
]
HOSPITALS_NB = [
    "Haukeland universitetssjukehus",
    "Oslo universitetssykehus, Ullevål",
    "Rikshospitalet",
    "St. Olavs hospital",
    "Sørlandet sykehus Arendal",
    "Akershus universitetssykehus",
    "Nordlandssykehuset Bodø",
    "Universitetssykehuset Nord-Norge",
    "Sykehuset Innlandet, Gjøvik",
    "Stavanger universitetssjukehus",
    "Diakonhjemmet sykehus",
    "Lovisenberg diakonale sykehus",
    "Sykehuset Østfold Kalnes",
    "Ålesund sjukehus",
    "Helgelandssykehuset Mo i Rana",
]
HOSPITALS_EN = [
    "Massachusetts General Hospital",
    "St. Mary's Medical Center",
    "Mercy Hospital",
    "Johns Hopkins Hospital",
    "Mount Sinai Hospital",
    "Cedars-Sinai Medical Center",
    "Riverside Community Hospital",
]
