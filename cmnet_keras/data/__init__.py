"""From raw dataset folders to training clips: readers, faces, cache, input pipeline."""
