using System.Diagnostics;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

// Runs ResNet18 (float, as downloaded) and its int8 copy (quantized by the build: see QuantizedApp.csproj) on the same
// inputs, and prints the sizes, how closely the quantized features agree with the float ones, and the speed.
string folder = Path.Combine(AppContext.BaseDirectory, "Models");
string floatPath = Path.Combine(folder, "ResNet18.onnx"), quantizedPath = Path.Combine(folder, "ResNet18.int8.onnx");
if (!File.Exists(floatPath) || !File.Exists(quantizedPath))
{
    Console.Error.WriteLine($"The models are not in {folder}; build the project (dotnet build samples/QuantizedApp) so that restore downloads ResNet18 and the build quantizes it.");
    return 1;
}

int threads = Math.Max(1, Environment.ProcessorCount);
using var floatSession = ModelSession.Load(floatPath, new SessionOptions { Threads = threads });
using var quantizedSession = ModelSession.Load(quantizedPath, new SessionOptions { Threads = threads });
string input = floatSession.Inputs[0].Name;
Console.WriteLine($"Float model:     {Mib(floatPath)}  {floatPath}");
Console.WriteLine($"Quantized model: {Mib(quantizedPath)}  {quantizedPath}");

// Real photos the build did not calibrate on (it used the first 12), when ../shared is there; else synthetic images.
var images = new List<(string Name, float[] Pixels)>();
string calibration = typeof(Program).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
    .Cast<System.Reflection.AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "CalibrationFolder")?.Value ?? "";
if (Directory.Exists(calibration))
{
    var reader = new OnnxModel(new ModelProto { Graph = new GraphProto() });
    foreach (string sample in Directory.GetDirectories(calibration).Order(StringComparer.Ordinal).Skip(12))
    {
        var tensor = TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(sample, input + ".pb")));
        images.Add((Path.GetFileName(sample), reader.ReadTensor(tensor).ToArray<float>()));
    }
}
else
{
    var random = new Random(2024);
    for (int image = 0; image < 4; image++)
    {
        var pixels = new float[3 * 224 * 224];
        for (int i = 0; i < pixels.Length; i++)
        {
            int x = i % 224, y = i / 224 % 224, c = i / (224 * 224);
            pixels[i] = (float)(Math.Sin((x + image * 17) * 0.05 * (c + 1)) * Math.Cos(y * 0.03) * 100 + random.NextDouble() * 40 + 100);
        }
        images.Add(($"synthetic {image + 1}", pixels));
    }
}
double worst = 1, sum = 0;
foreach (var (name, pixels) in images)
{
    var inputs = new Dictionary<string, Tensor> { [input] = Tensor.Create(pixels, 1, 3, 224, 224) };
    float[] expected = floatSession.Run(inputs).Values.First().ToArray<float>();
    float[] actual = quantizedSession.Run(inputs).Values.First().ToArray<float>();
    double cosine = Cosine(expected, actual);
    worst = Math.Min(worst, cosine);
    sum += cosine;
    Console.WriteLine($"{name,-26} features [{string.Join(", ", actual.Take(4).Select(v => v.ToString("F3")))}, ...]  cosine to float {cosine:F5}");
}
Console.WriteLine($"Agreement: mean cosine {sum / images.Count:F5}, worst {worst:F5} over {images.Count} images");

// Timed on the first photo, after warm-up: .NET compiles the kernels' final code only after some hundreds of calls.
var timing = new Dictionary<string, Tensor> { [input] = Tensor.Create(images[0].Pixels, 1, 3, 224, 224) };
Console.WriteLine($"Speed ({threads} threads): float {Median(floatSession):F1} ms, quantized {Median(quantizedSession):F1} ms per image");
return 0;

double Median(ModelSession session)
{
    var warmUp = Stopwatch.StartNew();
    while (warmUp.Elapsed.TotalSeconds < 2) session.Run(timing);
    var times = new List<double>();
    for (int i = 0; i < 15; i++)
    {
        var clock = Stopwatch.StartNew();
        session.Run(timing);
        times.Add(clock.Elapsed.TotalMilliseconds);
    }
    times.Sort();
    return times[times.Count / 2];
}

static double Cosine(float[] a, float[] b)
{
    double dot = 0, aa = 0, bb = 0;
    for (int i = 0; i < a.Length; i++)
    {
        dot += a[i] * (double)b[i];
        aa += a[i] * (double)a[i];
        bb += b[i] * (double)b[i];
    }
    return dot / Math.Sqrt(aa * bb);
}

static string Mib(string path) => $"{new FileInfo(path).Length / 1048576.0,6:F1} MiB";
