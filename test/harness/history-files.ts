// Workflow histories as JSON files (the replay fixtures under test/histories/), via protobufjs'
// own JSON form: enums as names, 64-bit integers as strings, bytes as base64.
import { temporal } from '@temporalio/proto';

type History = temporal.api.history.v1.IHistory;

export function historyToJsonText(history: History): string {
  return JSON.stringify(temporal.api.history.v1.History.fromObject(history).toJSON(), null, 1) + '\n';
}

export function historyFromJsonText(text: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(text) as Record<string, unknown>);
}
