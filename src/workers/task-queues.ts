/** The task queue every corral worker polls. One queue: any replica can run any corral task. */
export const corralTaskQueue = 'corral';
