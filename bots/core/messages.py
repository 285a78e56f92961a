"""The message catalog: every user-facing sentence, in English and Arabic."""

from __future__ import annotations

from typing import Any

DEFAULT_LOCALE = "en"

CATALOG: dict[str, dict[str, str]] = {
    "help": {
        "en": "Send me a photo with a style command, e.g. /ghibli. "
        "Commands: /styles, /quota, /cancel, /help.",
        "ar": "أرسل لي صورة مع أمر نمط، مثل /ghibli. الأوامر: /styles و/quota و/cancel و/help.",
    },
    "styles": {"en": "Styles: {styles}", "ar": "الأنماط المتاحة: {styles}"},
    "unknown_style": {
        "en": "I don't know the style “{style}”. Try one of: {styles}",
        "ar": "لا أعرف النمط «{style}». جرّب أحد هذه: {styles}",
    },
    "unknown_command": {
        "en": "I don't know that command. Send /help to see what I can do.",
        "ar": "لا أعرف هذا الأمر. أرسل /help لترى ما أستطيع فعله.",
    },
    "need_photo": {
        "en": "Please send a photo with that command.",
        "ar": "من فضلك أرسل صورة مع هذا الأمر.",
    },
    "queued": {
        "en": "Got it! Your {style} image is queued — you are #{position}.",
        "ar": "تم! صورتك بنمط {style} في الانتظار — ترتيبك {position}.",
    },
    "duplicate": {
        "en": "I already have this request; your image is on its way.",
        "ar": "وصلني هذا الطلب من قبل؛ صورتك في الطريق.",
    },
    "result": {
        "en": "Here is your {style} image. {left} left today.",
        "ar": "هذه صورتك بنمط {style}. المتبقي اليوم: {left}.",
    },
    "failed": {
        "en": "Sorry, I couldn't make that image. It was not counted; please try again.",
        "ar": "عذرًا، لم أتمكن من إنشاء الصورة. لم تُحتسب من رصيدك؛ حاول مرة أخرى من فضلك.",
    },
    "quota_daily": {
        "en": "You've used all {limit} images for today. Your allowance resets in {reset}.",
        "ar": "استخدمت كل صورك اليوم ({limit}). يتجدد رصيدك بعد {reset}.",
    },
    "quota_in_flight": {
        "en": "Your previous image is still being made; please wait for it first.",
        "ar": "صورتك السابقة ما زالت قيد الإنشاء؛ انتظرها أولًا من فضلك.",
    },
    "quota_status": {
        "en": "Tier: {tier}. Used today: {used} of {limit}; {left} left. Resets in {reset}.",
        "ar": "الفئة: {tier}. استخدمت اليوم {used} من {limit}؛ المتبقي {left}. يتجدد بعد {reset}.",
    },
    "banned": {
        "en": "Sorry, you can't use this bot.",
        "ar": "عذرًا، لا يمكنك استخدام هذا البوت.",
    },
    "cancelled": {
        "en": "Cancelled; it was not counted.",
        "ar": "أُلغي الطلب ولم يُحتسب.",
    },
    "nothing_to_cancel": {
        "en": "You have nothing waiting in the queue.",
        "ar": "ليس لديك طلب في الانتظار.",
    },
    "busy_error": {
        "en": "Sorry, I couldn't queue that right now. Nothing was counted; please try again soon.",
        "ar": "عذرًا، تعذّر وضع طلبك في الانتظار الآن. لم يُحتسب شيء؛ حاول بعد قليل.",
    },
    "image_empty": {
        "en": "That file is empty. Please send a photo.",
        "ar": "هذا الملف فارغ. من فضلك أرسل صورة.",
    },
    "image_not_image": {
        "en": "That doesn't look like a photo. Please send a JPEG, PNG or WebP image.",
        "ar": "لا يبدو هذا صورة. من فضلك أرسل صورة JPEG أو PNG أو WebP.",
    },
    "image_too_big_file": {
        "en": "That file is too large (over {mb} MB). Please send a smaller photo.",
        "ar": "الملف كبير جدًا (أكثر من {mb} ميغابايت). من فضلك أرسل صورة أصغر.",
    },
    "image_too_many_pixels": {
        "en": "That image is too large to process. Please send one under {mp} megapixels.",
        "ar": "الصورة أكبر من أن تُعالج. من فضلك أرسل صورة أقل من {mp} ميغابكسل.",
    },
    "image_corrupt": {
        "en": "I couldn't read that image; it may be damaged. Please try another.",
        "ar": "تعذّرت قراءة الصورة؛ ربما هي تالفة. جرّب صورة أخرى من فضلك.",
    },
    "image_unreadable": {
        "en": "I couldn't get that file. Please send it again.",
        "ar": "تعذّر الحصول على الملف. من فضلك أرسله مرة أخرى.",
    },
}
CATALOG["image_unsupported_format"] = CATALOG["image_not_image"]


def t(key: str, locale: str = DEFAULT_LOCALE, **params: Any) -> str:
    """The sentence `key` in `locale` (falling back to English), filled with `params`."""
    entry = CATALOG[key]
    return entry.get(locale, entry[DEFAULT_LOCALE]).format(**params)


def duration(seconds: float, locale: str = DEFAULT_LOCALE) -> str:
    """A short human duration: '3 h 20 min', '45 min', '1 min'."""
    minutes = max(1, round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    h, m = ("س", "د") if locale == "ar" else ("h", "min")
    if hours and minutes:
        return f"{hours} {h} {minutes} {m}"
    return f"{hours} {h}" if hours else f"{minutes} {m}"
