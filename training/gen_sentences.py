"""Texts for the synthetic-speech generators: phone-call-like English plus other languages.

`ENGLISH_SENTENCES` are fixed, hand-written lines in the register of a phone call (requests,
addresses, numbers, urgency, small talk). `templated_sentence` fills number and address
templates from a seeded generator so digits and street names vary between clips.
`OTHER_LANGUAGES` maps an espeak-ng voice name to a few sentences in that language.
"""

from __future__ import annotations

import numpy as np

ENGLISH_SENTENCES: tuple[str, ...] = (
    "Hi, it's me. I lost my phone and I'm calling from a friend's number.",
    "Mom, I need you to send me some money right away, it's an emergency.",
    "Hello, this is the fraud department of your bank calling about a suspicious payment.",
    "Can you please confirm the last four digits of your card?",
    "I'm stuck at the airport and my wallet was stolen.",
    "Please don't tell Dad about this, I'll explain everything later.",
    "We noticed an unusual login attempt on your account this morning.",
    "Could you read me the code we just sent to your phone?",
    "The package could not be delivered because the address was incomplete.",
    "Your parcel is waiting at the depot on Maple Street.",
    "I'm calling about the invoice we sent you last week.",
    "The transfer needs to go out before five o'clock today.",
    "This is your manager. I need you to buy some gift cards for a client.",
    "Keep this confidential until the deal is announced.",
    "Hey, are you free for lunch on Thursday?",
    "I'll be there in about twenty minutes, the traffic is terrible.",
    "Can you hear me? The line keeps breaking up.",
    "Sorry, you cut out for a second. Could you say that again?",
    "I'm going into a tunnel, I'll call you back.",
    "Your appointment with Doctor Patel is confirmed for Monday at nine thirty.",
    "Please arrive fifteen minutes early to fill out the paperwork.",
    "We are calling to remind you that your subscription expires tomorrow.",
    "Press one to speak with an agent, or stay on the line.",
    "Your call is important to us. Please hold.",
    "Thank you for calling customer support, how can I help you today?",
    "I'd like to cancel my order, please.",
    "The order number is on the receipt, it starts with a seven.",
    "Grandpa, it's me, I got into a bit of trouble with the police.",
    "The lawyer says we need to pay the bail in cash.",
    "Don't hang up, this is really important.",
    "I can't talk long, they only gave me one phone call.",
    "Could you wire the money to the account I'm about to give you?",
    "The routing number is different because it's an international bank.",
    "We'll refund the full amount once we receive the item.",
    "Is this a good time to talk?",
    "I've been trying to reach you all afternoon.",
    "Call me back as soon as you get this message.",
    "Leave the key under the mat, I'll pick it up tonight.",
    "The meeting has been moved to the third floor conference room.",
    "Can you forward me the contract before the end of the day?",
    "I'll need your date of birth to verify your identity.",
    "The account is registered under your maiden name.",
    "We've frozen your card as a precaution.",
    "To unlock it, we just need to confirm a few details.",
    "Hello? Hello? Is anybody there?",
    "Yes, that's right, I'm still here.",
    "No, that's not what I said at all.",
    "Okay, great, thanks so much for your help.",
    "Alright, talk to you later. Bye.",
    "It's your neighbour. Your car alarm has been going off for an hour.",
    "The water in the basement is rising, we need a plumber right now.",
    "The heating stopped working again last night.",
    "I'm outside the building but the door is locked.",
    "Could you buzz me in? It's the blue door next to the pharmacy.",
    "There's been an accident on the motorway, I'm fine but the car isn't.",
    "The insurance company needs the claim number by Friday.",
    "Please hold while I transfer your call to the billing department.",
    "Your balance is currently overdue by thirty days.",
    "If we don't hear from you, we'll have to pass this on to collections.",
    "This is a final notice regarding your vehicle's extended warranty.",
    "You've been selected for a free cruise to the Bahamas.",
    "I'm calling from the tax office about an unpaid balance.",
    "Failure to pay today will result in a warrant for your arrest.",
    "We accept payment by bank transfer or prepaid voucher.",
    "Hi sweetie, can you pick up the kids from school today?",
    "The school nurse called, Emma has a fever.",
    "I forgot my password again, can you reset it for me?",
    "The server went down around midnight and nobody noticed.",
    "We need to approve the payment before the auditors arrive.",
    "Send it to the new supplier, not the old one. Their details changed.",
    "The CEO asked me to handle this personally.",
    "I'm in a meeting, just text me the confirmation.",
    "Can you check whether the shipment left the warehouse?",
    "The delivery driver says nobody answered the door.",
    "Your table for four is booked for eight o'clock.",
    "We're running about ten minutes late, start without us.",
    "Do you want me to bring anything for dinner?",
    "I think I left my glasses at your place.",
    "The train is delayed again, I'll miss the connection.",
    "My flight lands at half past six, can you pick me up?",
    "Terminal two, arrivals, outside the coffee shop.",
    "I'll wait by the taxi rank.",
    "The doctor wants to see the test results before deciding.",
    "Take two tablets in the morning and one at night.",
    "The pharmacy closes at seven on weekdays.",
    "Your prescription is ready for collection.",
    "I'm calling to follow up on your job application.",
    "Would you be available for an interview next Tuesday?",
    "We'd like to offer you the position, starting next month.",
    "Please bring a photo ID and proof of address.",
    "The landlord wants the rent a week early this month.",
    "The electrician can come between ten and two.",
    "Is the back gate open? I'll leave the parcel in the garden.",
    "It's freezing out here, hurry up.",
    "I can barely hear you, there's a lot of wind.",
    "I'll spell it for you: S, M, I, T, H.",
    "That's M as in Mike, not N as in November.",
    "My email is john dot miller at example dot com.",
    "Could you repeat the reference number, please?",
    "Write this down, it's important.",
    "The password is the name of our first dog followed by the year.",
    "Don't click any links in that message, it's a scam.",
    "We have detected a virus on your computer.",
    "Please install the remote support tool so I can fix it.",
    "I just need you to open the settings and read me what you see.",
    "Your Social Security number has been suspended.",
    "Please stay on the line to speak with an officer.",
    "We'll send a courier to collect the card from your house.",
    "Put the cash in an envelope and give it to the driver.",
    "Honestly, I'm fine. I'm just a bit shaken up.",
    "I miss you. When are you coming home?",
    "Happy birthday! Sorry I couldn't make it to the party.",
    "Did you watch the game last night? What a finish.",
    "The weather forecast says heavy rain all weekend.",
    "Let's reschedule for next week when things calm down.",
    "I'm not sure that's a good idea, let me think about it.",
    "Could you ask her to call me when she gets back?",
    "He's not at his desk right now, can I take a message?",
    "Sure, I'll let him know you called.",
    "The quarterly report shows a small drop in sales.",
    "We need three more signatures on the purchase order.",
    "I'm sending the documents by courier this afternoon.",
    "The bank branch on the high street is closing down.",
    "You can still use the cash machine outside.",
    "Remember to lock the front door and switch off the oven.",
    "The alarm code is the same as before.",
    "I'll be working from home tomorrow.",
    "Can we keep this call short? I'm about to board.",
    "They're calling my gate, I have to go.",
    "I'll transfer you to my colleague who handles refunds.",
    "The system shows two payments were taken by mistake.",
    "We apologise for the inconvenience caused.",
    "Would you like to hear our latest offers?",
    "No thank you, please remove me from your list.",
    "How did you get this number?",
    "I'm sorry, I think you have the wrong number.",
    "Who am I speaking with, please?",
    "It's Sarah from accounts, we met at the conference.",
    "Listen carefully, I'm only going to say this once.",
    "You need to act quickly before the offer expires.",
    "There's nothing to worry about, it's a routine security check.",
    "Just read me the six digit code and we're done.",
    "Our records show that you moved house recently.",
    "What's the postcode for the new address?",
    "The engineer will need access to the meter.",
    "I'm at the hospital, they're keeping me overnight.",
    "Can you feed the cat while I'm away?",
    "The spare keys are in the kitchen drawer.",
)

_STREETS = (
    "Maple Street",
    "Oak Avenue",
    "Station Road",
    "Church Lane",
    "Elm Drive",
    "High Street",
    "Victoria Road",
    "Park Crescent",
    "Mill Lane",
    "Queen Street",
    "Sunset Boulevard",
    "Riverside Walk",
    "King Edward Road",
    "Lincoln Way",
    "Cedar Court",
)
_CITIES = (
    "Springfield",
    "Manchester",
    "Denver",
    "Leeds",
    "Portland",
    "Bristol",
    "Austin",
    "Glasgow",
    "Toronto",
    "Dublin",
    "Phoenix",
    "Cardiff",
)
_NAMES = ("David", "Maria", "James", "Priya", "Tom", "Linda", "Ahmed", "Chen", "Olga", "Sam")
_TEMPLATES = (
    "The address is {n} {street}, {city}.",
    "Please send it to {n} {street}, apartment {m}.",
    "My number is {phone}, call me back on that.",
    "The reference number is {digits}.",
    "Your verification code is {code}.",
    "Transfer {amount} dollars to account {digits} today.",
    "It comes to {amount} pounds and {m} pence in total.",
    "Meet me at {n} {street} at {hour} o'clock.",
    "This is {name} from {city} branch, regarding case number {digits}.",
    "The card ending in {code4} was charged {amount} dollars.",
    "Room {n}, floor {m}, ask for {name} at reception.",
    "Flight {code4} to {city} is boarding at gate {m}.",
    "The sort code is {sort} and the account number is {digits}.",
    "I need {amount} in cash by {hour} o'clock, please.",
    "Call {name} on {phone} if I'm not back by {hour}.",
)


def _digits(rng: np.random.Generator, count: int) -> str:
    return " ".join(str(int(d)) for d in rng.integers(0, 10, size=count))


def templated_sentence(rng: np.random.Generator) -> str:
    """Fill one phone-call template (address, numbers, codes) from `rng`.

    Args:
        rng: seeded generator; the same state always gives the same sentence.

    Returns:
        One English sentence with digits, amounts and names spelled the way a caller reads them.
    """
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(
        n=int(rng.integers(1, 400)),
        m=int(rng.integers(1, 40)),
        street=_STREETS[int(rng.integers(len(_STREETS)))],
        city=_CITIES[int(rng.integers(len(_CITIES)))],
        name=_NAMES[int(rng.integers(len(_NAMES)))],
        phone=_digits(rng, 10),
        digits=_digits(rng, int(rng.integers(6, 11))),
        code=_digits(rng, 6),
        code4="".join(str(int(d)) for d in rng.integers(0, 10, size=4)),
        sort="-".join(f"{int(v):02d}" for v in rng.integers(0, 100, size=3)),
        amount=int(rng.integers(20, 5000)),
        hour=int(rng.integers(1, 13)),
    )


def english_text(rng: np.random.Generator) -> str:
    """Pick a fixed sentence (about 2/3 of the time) or a templated one, sometimes two joined.

    Args:
        rng: seeded generator.

    Returns:
        Text of roughly 2 to 10 seconds of speech.
    """
    parts = []
    for _ in range(1 + int(rng.random() < 0.35)):
        if rng.random() < 0.65:
            parts.append(ENGLISH_SENTENCES[int(rng.integers(len(ENGLISH_SENTENCES)))])
        else:
            parts.append(templated_sentence(rng))
    return " ".join(parts)


OTHER_LANGUAGES: dict[str, tuple[str, ...]] = {
    "de": (
        "Hallo, ich bin es. Ich habe mein Handy verloren und brauche dringend Hilfe.",
        "Bitte überweisen Sie den Betrag noch heute auf das neue Konto.",
        "Ihr Paket liegt in der Filiale in der Hauptstraße zwölf.",
    ),
    "fr": (
        "Bonjour, je vous appelle de la part de votre banque au sujet d'un paiement suspect.",
        "Pouvez-vous me donner le code que vous venez de recevoir par SMS ?",
        "Je serai là dans vingt minutes, il y a beaucoup de circulation.",
    ),
    "es": (
        "Hola mamá, necesito que me envíes dinero ahora mismo, es urgente.",
        "Su cita está confirmada para el lunes a las nueve y media.",
        "La dirección es calle Mayor, número cuarenta y dos.",
    ),
    "it": (
        "Pronto, sono io. Ho perso il portafoglio e non so cosa fare.",
        "Il pacco non è stato consegnato perché l'indirizzo era incompleto.",
    ),
    "pt": (
        "Olá, aqui é do banco. Detectamos uma compra suspeita no seu cartão.",
        "Pode confirmar os últimos quatro dígitos, por favor?",
    ),
    "nl": (
        "Hallo, met mij. Kun je me zo snel mogelijk terugbellen?",
        "De vergadering is verplaatst naar donderdagmiddag.",
    ),
    "pl": (
        "Dzień dobry, dzwonię w sprawie pana zamówienia.",
        "Proszę podać numer konta do przelewu.",
    ),
    "ru": (
        "Алло, это служба безопасности банка. С вашей карты пытаются списать деньги.",
        "Назовите, пожалуйста, код из сообщения.",
    ),
    "hi": (
        "नमस्ते, मैं बैंक से बोल रहा हूँ। आपके खाते में एक संदिग्ध लेनदेन हुआ है।",
        "कृपया अपना ओटीपी बताइए।",
    ),
    "cmn": ("你好，我是银行客服，您的账户有一笔可疑交易。", "请告诉我您收到的验证码。"),
    "ja": ("もしもし、私です。財布をなくしてしまって、お金を送ってほしいの。",),
    "tr": ("Merhaba, bankanızdan arıyorum. Kartınızda şüpheli bir işlem var.",),
    "sv": ("Hej, det är jag. Kan du ringa mig så snart som möjligt?",),
    "ar": ("مرحبا، أنا من البنك. هناك عملية مشبوهة على حسابك.",),
    "vi": ("Xin chào, tôi gọi từ ngân hàng về một giao dịch đáng ngờ.",),
}
