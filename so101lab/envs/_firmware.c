/* The STS3215 firmware emulation of `so101lab.envs.servo.Servos`, stepped in C.

   The same equations as `Servos.substep`, run before every physics step, so a control step of
   16 physics steps costs one call from Python instead of Python work on every physics step.
   No MuJoCo header is needed: MuJoCo's arrays and `mj_step` come in as pointers, so the library
   does not depend on the MuJoCo version's struct layout. `Servos` owns every array named here
   (numpy arrays, or views of the MjModel/MjData) and the Python implementation is the reference
   the tests compare this one against. */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*mj_step_fn)(const void *model, void *data);

typedef struct {
  mj_step_fn mj_step;
  const void *model;
  void *data;
  double *ctrl;                 /* MjData.ctrl */
  const double *actuator_force; /* MjData.actuator_force */
  double *frictionloss;         /* MjModel.dof_frictionloss */
  const int64_t *actuator_ids;  /* per servo */
  const int64_t *dof_adr;       /* per servo */
  int64_t n;                    /* servos */
  int64_t capacity;             /* of the command ring */
  double dt;                    /* the firmware's physics step (s) */
  double timestep;              /* MjModel.opt.timestep: how far mj_step advances time */
  double max_step;              /* rad the goal may move per physics step */
  double friction;              /* gear friction at no load (N m) */
  double friction_load;         /* extra friction per N m of drive */
  double *goal;                 /* what the firmware regulates to, per servo */
  double *pending;              /* the latest command that has arrived, per servo */
  double *due;                  /* ring: when each command in flight takes effect */
  double *commands;             /* ring: capacity x n targets */
  int64_t *ring;                /* head, count */
  double latency;               /* s from a command's sending to its taking effect */
} Firmware;

static int due_before(const Firmware *f, double before) {
  return f->ring[1] > 0 && f->due[f->ring[0]] < before - 1e-12;
}

static const double *pop(Firmware *f) {
  const double *command = f->commands + f->ring[0] * f->n;
  f->ring[0] = (f->ring[0] + 1) % f->capacity;
  f->ring[1] -= 1;
  return command;
}

/* One physics step of firmware (`Servos.substep`): take due commands, average the commands over
   the step, slew the goal, write ctrl and the load-dependent friction. */
static void substep(Firmware *f, double time, double *weighted) {
  int64_t n = f->n, i;
  while (f->ring[1] > 0 && f->due[f->ring[0]] <= time + 1e-12) {
    const double *command = pop(f);
    for (i = 0; i < n; i++) f->pending[i] = command[i];
  }
  const double *target = f->pending;
  if (due_before(f, time + f->dt)) {
    double cursor = time, end = time + f->dt;
    const double *current = f->pending;
    for (i = 0; i < n; i++) weighted[i] = 0.0;
    while (due_before(f, end)) {
      double due = f->due[f->ring[0]];
      const double *command = pop(f);
      if (due > cursor) {
        for (i = 0; i < n; i++) weighted[i] += current[i] * (due - cursor);
        cursor = due;
      }
      current = command;
    }
    for (i = 0; i < n; i++) {
      weighted[i] += current[i] * (end - cursor);
      f->pending[i] = current[i];
      weighted[i] = weighted[i] / f->dt;
    }
    target = weighted;
  }
  for (i = 0; i < n; i++) {
    double move = fmin(fmax(target[i] - f->goal[i], -f->max_step), f->max_step);
    f->goal[i] += move;
    f->ctrl[f->actuator_ids[i]] = f->goal[i];
  }
  if (f->friction_load != 0.0)
    for (i = 0; i < n; i++)
      f->frictionloss[f->dof_adr[i]] = f->friction + f->friction_load * fabs(f->actuator_force[f->actuator_ids[i]]);
}

/* Advance `nstep` physics steps from `time` (MjData.time) under the firmware. */
void so101_firmware_step(Firmware *f, double time, int64_t nstep) {
  double weighted[64];
  for (int64_t k = 0; k < nstep; k++) {
    substep(f, time, weighted);
    f->mj_step(f->model, f->data);
    time += f->timestep;
  }
}

/* `Servos.command`: targets (rad) sent at `sent_at` join the ring. 0, or 2 when the ring is full. */
static int command(Firmware *f, const double *targets, double sent_at) {
  if (f->ring[1] == f->capacity) return 2;
  int64_t slot = (f->ring[0] + f->ring[1]) % f->capacity;
  f->due[slot] = sent_at + f->latency;
  for (int64_t i = 0; i < f->n; i++) f->commands[slot * f->n + i] = targets[i];
  f->ring[1] += 1;
  return 0;
}

/* One control step of `SO101Env.step` up to its observation of the joints: the action (LeRobot
   units, float32) clipped to its limits and converted to radians, sent now, `nstep` physics
   steps, and the joint positions read back in LeRobot units. Float operations in the order NumPy
   does them there, so both give the same bits. */
typedef struct {
  Firmware *firmware;
  const float *action;   /* in: one target per servo */
  const float *low;      /* action limits */
  const float *high;
  const double *scale;   /* units = radians * scale + offset (so101lab.contract) */
  const double *offset;
  const double *qpos;    /* MjData.qpos */
  const int64_t *qpos_adr;
  float *agent_pos;      /* out: joint positions in units */
} Control;

/* 0, 1 for a non-finite action (nothing sent or stepped), 2 for a full ring. */
int so101_control_step(Control *c, double time, int64_t nstep) {
  Firmware *f = c->firmware;
  double targets[64];
  for (int64_t i = 0; i < f->n; i++) {
    float a = c->action[i];
    if (!isfinite(a)) return 1;
    a = fminf(fmaxf(a, c->low[i]), c->high[i]);
    targets[i] = ((double)a - c->offset[i]) / c->scale[i];
  }
  int status = command(f, targets, time);
  if (status) return status;
  so101_firmware_step(f, time, nstep);
  for (int64_t i = 0; i < f->n; i++)
    c->agent_pos[i] = (float)(c->qpos[c->qpos_adr[i]] * c->scale[i] + c->offset[i]);
  return 0;
}

/* The layout firmware.py's ctypes structs must mirror: sizeof(Firmware), each field's offset in
   declaration order, then the same for Control. Returns how many values it wrote (at most `capacity`).
   firmware.py compares them with its structs at load, so a hand edit on one side cannot pass. */
int64_t so101_struct_layout(int64_t *out, int64_t capacity) {
  const int64_t values[] = {
    sizeof(Firmware), offsetof(Firmware, mj_step), offsetof(Firmware, model), offsetof(Firmware, data),
    offsetof(Firmware, ctrl), offsetof(Firmware, actuator_force), offsetof(Firmware, frictionloss),
    offsetof(Firmware, actuator_ids), offsetof(Firmware, dof_adr), offsetof(Firmware, n),
    offsetof(Firmware, capacity), offsetof(Firmware, dt), offsetof(Firmware, timestep),
    offsetof(Firmware, max_step), offsetof(Firmware, friction), offsetof(Firmware, friction_load),
    offsetof(Firmware, goal), offsetof(Firmware, pending), offsetof(Firmware, due),
    offsetof(Firmware, commands), offsetof(Firmware, ring), offsetof(Firmware, latency),
    sizeof(Control), offsetof(Control, firmware), offsetof(Control, action), offsetof(Control, low),
    offsetof(Control, high), offsetof(Control, scale), offsetof(Control, offset), offsetof(Control, qpos),
    offsetof(Control, qpos_adr), offsetof(Control, agent_pos),
  };
  int64_t n = (int64_t)(sizeof(values) / sizeof(values[0]));
  for (int64_t i = 0; i < n && i < capacity; i++) out[i] = values[i];
  return n;
}
