import { defineConfig } from 'vitest/config';

// Three tiers, one per dependency: unit (hermetic), containers (real sshd + systemd
// through testcontainers), e2e (real VMs through Vagrant + libvirt).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          globalSetup: ['test/helpers/unit-tmpdir.ts'],
          // RSA key generation and openssl are slow on a loaded host: generous, not tight.
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'containers',
          include: ['test/containers/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 2_400_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 3_600_000,
          hookTimeout: 3_600_000,
          fileParallelism: false,
          sequence: { concurrent: false },
        },
      },
    ],
  },
});
