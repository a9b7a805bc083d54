// corral's custom search attributes, kept current by the workflows so an operator can filter
// the Web UI with e.g. `CorralState="idle"`. Defined once here so the dev server registration,
// the workflows and the clients agree on names and types.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const corralPoolKey = defineSearchAttributeKey('CorralPool', SearchAttributeType.KEYWORD);
export const corralStateKey = defineSearchAttributeKey('CorralState', SearchAttributeType.KEYWORD);
export const corralImageKey = defineSearchAttributeKey('CorralImage', SearchAttributeType.KEYWORD);
export const corralTenantKey = defineSearchAttributeKey('CorralTenant', SearchAttributeType.KEYWORD);

export const corralSearchAttributeKeys = [corralPoolKey, corralStateKey, corralImageKey, corralTenantKey] as const;
