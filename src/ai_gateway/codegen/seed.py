"""The built-in `code-generate` template, put in the prompt store the first time the code
generation flow needs it and finds none (version 1, labelled `production`); from then on it is a
template like any other, that operators version and relabel."""

from __future__ import annotations

from ai_gateway.codegen.template import DEFAULT_LABEL, DESCRIPTION, TEMPLATE, TEMPLATE_ID, VARIABLES
from ai_gateway.errors import ConflictError, NotFoundError
from ai_gateway.prompts.catalog import PromptCatalog


class TemplateSeed:
    def __init__(self, catalog: PromptCatalog) -> None:
        self._catalog = catalog
        self._done = False

    async def __call__(self) -> None:
        if self._done:
            return
        try:
            await self._catalog.head(TEMPLATE_ID)
        except NotFoundError:
            try:
                await self._catalog.create(
                    TEMPLATE_ID, DESCRIPTION, TEMPLATE, VARIABLES, "built in"
                )
            except ConflictError:  # another instance made it first, and labels it
                pass
            else:
                await self._catalog.set_label(TEMPLATE_ID, DEFAULT_LABEL, 1)
        self._done = True
