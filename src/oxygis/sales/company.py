"""The company details' checks: French registration numbers and VAT numbers (through
python-stdnum, with their check digits), and the logo, which is re-encoded here.

Threats the logo guards against (S5): a file that is not the image it claims to be (a
polyglot or a script served back as an image), a decompression bomb (a small file that
unpacks to gigabytes of pixels), metadata (GPS, names) sent on in every PDF, and any path
taken from the upload. Only the pixels are kept, re-encoded as a PNG of bounded size."""

from __future__ import annotations

import io

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from stdnum import exceptions as stdnum_errors
from stdnum.eu import vat
from stdnum.fr import siren, siret

LOGO_MAX_BYTES = 512 * 1024  # as uploaded
LOGO_MAX_PIXELS = 4096 * 4096  # before decoding: larger is refused unread (bomb)
LOGO_BOX = (600, 240)  # the largest a document shows; larger logos are scaled down
LOGO_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}


def _checked(module, value: str, message: str) -> str:
    try:
        return module.validate(value)
    except stdnum_errors.ValidationError:
        raise ValidationError(message) from None


def check_siren(value: str) -> str:
    return _checked(siren, value, _("This is not a valid SIREN (9 digits, with its check digit)."))


def check_siret(value: str) -> str:
    return _checked(siret, value, _("This is not a valid SIRET (14 digits, with its check digit)."))


def check_vat_number(value: str) -> str:
    return _checked(vat, value, _("This is not a valid EU VAT number (e.g. FR44732829320)."))


def clean_logo(upload) -> bytes:
    """The uploaded logo as a fresh PNG, or ValidationError with a one-line reason."""
    from PIL import Image, UnidentifiedImageError

    if upload.size > LOGO_MAX_BYTES:
        raise ValidationError(
            _("The logo is larger than %(limit)s KB.") % {"limit": LOGO_MAX_BYTES // 1024}
        )
    data = upload.read(LOGO_MAX_BYTES + 1)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in LOGO_FORMATS:
                raise ValidationError(_("The logo must be a PNG, JPEG, GIF or WebP image."))
            width, height = image.size
            if width * height > LOGO_MAX_PIXELS:
                raise ValidationError(_("The logo has too many pixels."))
            image.load()  # decodes it all: a truncated or corrupt file fails here
            image = image.convert("RGBA")
            image.thumbnail(LOGO_BOX)
            out = io.BytesIO()
            image.save(out, format="PNG", optimize=True)  # no metadata is copied
    except Image.DecompressionBombError:  # refused by Pillow from the header alone
        raise ValidationError(_("The logo has too many pixels.")) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ValidationError(_("This file is not an image that can be read.")) from None
    return out.getvalue()
