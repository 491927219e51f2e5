/** A device budget no test model reaches, for tests about something other than memory. */
import { deviceRoom } from "../../src/model/DeviceRoom.ts"

export const unlimitedRoom = deviceRoom("test memory", Number.POSITIVE_INFINITY)
