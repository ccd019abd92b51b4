"""A differential-drive rover body: chassis, two driven wheels, a passive ball caster.

Generated in code (no URDF file): ~5 kg, wheel radius 5 cm, track 30 cm, chassis radius 0.18 m; the wheels
reach 0.203 m from the centre (``RoverSpec.footprint``, the env's ``BODY_RADIUS``).
``RoverBody.drive(v, w)`` converts a body twist into wheel velocity targets (one PyBullet call).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pybullet as p


@dataclass(frozen=True)
class RoverSpec:
    """Geometry, mass and limits of the rover."""

    chassis_radius: float = 0.18
    chassis_height: float = 0.1
    chassis_mass: float = 4.5
    wheel_radius: float = 0.05
    wheel_width: float = 0.03
    wheel_mass: float = 0.25
    half_track: float = 0.15  # wheel y offset from the centre
    wheel_x: float = -0.03
    caster_radius: float = 0.025
    caster_x: float = 0.12
    wheel_friction: float = 1.0
    max_speed: float = 1.0  # m/s
    max_turn: float = 2.0  # rad/s
    motor_torque: float = 0.5  # N m per wheel (saturates acceleration near 4 m/s^2)
    lidar_height: float = 0.2  # above the ground

    @property
    def base_z(self) -> float:
        return self.wheel_radius + 0.05

    @property
    def footprint(self) -> float:
        """Radius (m) of the smallest circle about the chassis centre that holds the whole body seen from
        above: the chassis, or the wheels where they reach further out (they do: 0.203 m)."""
        wheel = float(np.hypot(self.wheel_x, self.half_track)) + self.wheel_radius
        return max(self.chassis_radius, wheel)


class RoverBody:
    """The rover in one PyBullet client; joints 0/1 are the left/right wheels."""

    LEFT, RIGHT = 0, 1

    def __init__(self, client: int, spec: RoverSpec, pose: tuple[float, float, float],
                 friction_scale: float = 1.0, mass_scale: float = 1.0) -> None:
        self.client = client
        self.spec = s = spec
        c = client
        # chassis cylinder + ball caster as one compound base; wheels are spheres on revolute joints
        # (a point contact like a thin wheel on flat ground, and much cheaper than cylinder contacts)
        z0 = s.base_z
        chassis = p.createCollisionShapeArray(
            [p.GEOM_CYLINDER, p.GEOM_SPHERE], radii=[s.chassis_radius, s.caster_radius],
            lengths=[s.chassis_height, 0.0],
            collisionFramePositions=[(0, 0, 0), (s.caster_x, 0, s.caster_radius - z0)], physicsClientId=c)
        wheel = p.createCollisionShape(p.GEOM_SPHERE, radius=s.wheel_radius, physicsClientId=c)
        wheel_orn = p.getQuaternionFromEuler((np.pi / 2, 0, 0))
        dz = s.wheel_radius - z0
        x, y, yaw = pose
        self.body = p.createMultiBody(
            baseMass=s.chassis_mass * mass_scale, baseCollisionShapeIndex=chassis,
            basePosition=(x, y, z0), baseOrientation=p.getQuaternionFromEuler((0, 0, yaw)),
            linkMasses=[s.wheel_mass, s.wheel_mass],
            linkCollisionShapeIndices=[wheel, wheel], linkVisualShapeIndices=[-1, -1],
            linkPositions=[(s.wheel_x, s.half_track, dz), (s.wheel_x, -s.half_track, dz)],
            linkOrientations=[wheel_orn, wheel_orn],
            linkInertialFramePositions=[(0, 0, 0)] * 2, linkInertialFrameOrientations=[(0, 0, 0, 1)] * 2,
            linkParentIndices=[0, 0], linkJointTypes=[p.JOINT_REVOLUTE, p.JOINT_REVOLUTE],
            # wheel frames are rotated by +90 deg about x, so their local -z is the world +y axis
            linkJointAxis=[(0, 0, -1), (0, 0, -1)], physicsClientId=c)
        mu = s.wheel_friction * friction_scale
        for j in (self.LEFT, self.RIGHT):
            p.changeDynamics(self.body, j, lateralFriction=mu, rollingFriction=0.0, spinningFriction=0.0,
                             physicsClientId=c)
        # frictionless chassis and caster (the caster ball rolls freely)
        p.changeDynamics(self.body, -1, lateralFriction=0.0, rollingFriction=0.0, spinningFriction=0.0,
                         physicsClientId=c)
        # disable the default joint motors' velocity lock before our own control
        self.drive(0.0, 0.0)

    def wheel_targets(self, v: float, w: float) -> tuple[float, float]:
        """Wheel angular velocities (rad/s) for body speed ``v`` (m/s) and turn rate ``w`` (rad/s)."""
        s = self.spec
        return (v - w * s.half_track) / s.wheel_radius, (v + w * s.half_track) / s.wheel_radius

    def drive(self, v: float, w: float) -> None:
        """Set wheel velocity targets for the twist (v, w)."""
        wl, wr = self.wheel_targets(v, w)
        p.setJointMotorControlArray(self.body, (self.LEFT, self.RIGHT), p.VELOCITY_CONTROL,
                                    targetVelocities=(wl, wr), forces=(self.spec.motor_torque,) * 2,
                                    physicsClientId=self.client)

    def state(self) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """(position xyz, yaw, linear velocity xyz, angular velocity xyz) in the world frame."""
        c = self.client
        pos, orn = p.getBasePositionAndOrientation(self.body, physicsClientId=c)
        lin, ang = p.getBaseVelocity(self.body, physicsClientId=c)
        x, y, z, w = orn
        yaw = float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
        return np.array(pos), yaw, np.array(lin), np.array(ang)

    def wheel_speeds(self) -> np.ndarray:
        """Measured (left, right) wheel angular velocities (rad/s)."""
        js = p.getJointStates(self.body, (self.LEFT, self.RIGHT), physicsClientId=self.client)
        return np.array([js[0][1], js[1][1]])
