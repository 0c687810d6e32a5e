"""What a run's Temporal workflow says about the run: its target's kind and name.

Every workflow Stigmer starts carries a memo ``{"StigmerKind": "Agent", "StigmerName": "bot"}``
and, where the namespace has them, the search attributes ``StigmerKind`` and ``StigmerName``
(Keyword), so the Temporal UI shows them and ``temporal workflow list --query
'StigmerName="bot"'`` finds a target's runs. The local stack's dev server registers both at start
(:data:`DEV_SERVER_ARGS`); elsewhere the dispatcher registers them through the operator API when it
may, and leaves them out (memo only) when it may not.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "DEV_SERVER_ARGS",
    "KIND_ATTRIBUTE",
    "NAME_ATTRIBUTE",
    "registered_search_attributes",
    "run_memo",
    "run_search_attributes",
]

logger = logging.getLogger("stigmer.server")

KIND_ATTRIBUTE = "StigmerKind"
NAME_ATTRIBUTE = "StigmerName"
#: ``temporal server start-dev`` options registering the search attributes.
DEV_SERVER_ARGS = (
    "--search-attribute",
    f"{KIND_ATTRIBUTE}=Keyword",
    "--search-attribute",
    f"{NAME_ATTRIBUTE}=Keyword",
)


def run_memo(kind: str, name: str) -> dict[str, str]:
    """The memo of a run's workflow."""
    return {KIND_ATTRIBUTE: kind, NAME_ATTRIBUTE: name}


def run_search_attributes(kind: str, name: str) -> Any:
    """``TypedSearchAttributes`` of a run's workflow."""
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

    return TypedSearchAttributes(
        [
            SearchAttributePair(SearchAttributeKey.for_keyword(KIND_ATTRIBUTE), kind),
            SearchAttributePair(SearchAttributeKey.for_keyword(NAME_ATTRIBUTE), name),
        ]
    )


async def registered_search_attributes(client: Any, namespace: str) -> bool:
    """Whether ``namespace`` has both search attributes, registering them (operator API) if it
    lacks them and the caller may; False (with a log line) when they cannot be had."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    wanted = {KIND_ATTRIBUTE, NAME_ATTRIBUTE}
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = wanted - set(listed.custom_attributes)
        if missing:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace,
                    search_attributes=dict.fromkeys(missing, IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD),
                )
            )
        return True
    except Exception as exc:
        logger.info(
            "runs carry their target in a memo only: search attributes %s unavailable in namespace %s (%s)",
            ", ".join(sorted(wanted)),
            namespace,
            " ".join(str(exc).split()) or type(exc).__name__,
        )
        return False
