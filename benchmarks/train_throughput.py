"""Training throughput, our loop against a torchvision Dataset + DataLoader pipeline (backdoor/throughput.py).

  python benchmarks/train_throughput.py --smoke                       # seconds, anywhere
  python benchmarks/train_throughput.py                               # small-cnn, 1x28x28, CPU default
  python benchmarks/train_throughput.py --dataset-shape cifar10 --arch resnet18 --steps 100
  python benchmarks/train_throughput.py --cifar10-epoch               # one resnet18 epoch, 50k 32 px images (GPU)
"""

from backdoor.throughput import main

if __name__ == "__main__":
    main()
