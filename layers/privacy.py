"""Personal numbers shown to people who need less than the whole number (脱敏): the one phone mask.

Every list, Open311 answer and worker register masks phones with :func:`mask_phone`; who may see a
full number is the caller's scope (:meth:`layers.accounts.scope.Scope.phone`).
"""

from __future__ import annotations


def mask_phone(phone: str | None) -> str | None:
    """138****1234: keep the first three and last four digits, hide the rest."""
    if not phone:
        return phone
    text = phone.strip()
    if len(text) < 8:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 7) + text[-4:]
